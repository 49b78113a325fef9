# Oxford 102 Flowers: 102 classes, 1,020 train / 1,020 val / 6,149 test.
#   data/Flowers102/{jpg/,imagelabels.mat,setid.mat}
flowers102 = dict(
    train=dict(
        dataset=dict(
            type='mmpretrain.Flowers102', data_root='data/Flowers102',
            split='train')),
    val=dict(
        dataset=dict(
            type='mmpretrain.Flowers102', data_root='data/Flowers102',
            split='val')),
    test=dict(
        dataset=dict(
            type='mmpretrain.Flowers102', data_root='data/Flowers102',
            split='test')))
