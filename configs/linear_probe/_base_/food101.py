# Food-101: 101 classes, 75,750 train / 25,250 test, no val split.
#   data/food-101/images/<class>/<id>.jpg, data/food-101/meta/{train,test}.txt
food101 = dict(
    train=dict(
        dataset=dict(
            type='mmpretrain.Food101', data_root='data/food-101',
            split='train')),
    test=dict(
        dataset=dict(
            type='mmpretrain.Food101', data_root='data/food-101',
            split='test')))
