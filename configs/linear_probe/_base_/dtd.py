# Describable Textures (DTD): 47 classes, split 1 (1,880 train / 1,880 val /
# 1,880 test).
#   data/dtd/{images/<class>/,imdb/imdb.mat}
dtd = dict(
    train=dict(
        dataset=dict(type='mmpretrain.DTD', data_root='data/dtd', split='train')),
    val=dict(
        dataset=dict(type='mmpretrain.DTD', data_root='data/dtd', split='val')),
    test=dict(
        dataset=dict(type='mmpretrain.DTD', data_root='data/dtd', split='test')))
