# SUN397: 397 classes, partition 01 (19,850 train / 19,850 test), no val
# split.
#   data/SUN397/{SUN397/<letter>/<class>/,Partitions/{ClassName,Training_01,Testing_01}.txt}
sun397 = dict(
    train=dict(
        dataset=dict(
            type='mmpretrain.SUN397', data_root='data/SUN397', split='train')),
    test=dict(
        dataset=dict(
            type='mmpretrain.SUN397', data_root='data/SUN397', split='test')))
