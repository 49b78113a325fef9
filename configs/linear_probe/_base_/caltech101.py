# Caltech-101: 102 classes (with the background class), no official split:
# mmpretrain's meta/{train,test}.txt (3,060 train / 6,728 test, from
# https://download.openmmlab.com/mmpretrain/datasets/caltech_meta.zip), no
# val split.
#   data/caltech-101/{101_ObjectCategories/<class>/,meta/{train,test}.txt}
caltech101 = dict(
    train=dict(
        dataset=dict(
            type='mmpretrain.Caltech101', data_root='data/caltech-101',
            split='train')),
    test=dict(
        dataset=dict(
            type='mmpretrain.Caltech101', data_root='data/caltech-101',
            split='test')))
