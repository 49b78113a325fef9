# CompCars, web-nature part (car model classification, 431 models), read by
# mmpretrain.CustomDataset from annotation files. Request the data at
# http://mmlab.ie.cuhk.edu.hk/datasets/comp_cars/ and arrange it as
#
#   data/compcars/
#   ├── image/<make_id>/<model_id>/<year>/<name>.jpg ...
#   └── meta/
#       ├── train.txt   ("78/1/2014/3ac218c0c6c378.jpg 0")
#       └── val.txt
#
# The lists are train_test_split/classification/{train,test}.txt of the
# dataset, each path followed by its label: the index of its model_id among
# the 431 model ids of the classification split (sorted).
compcars_train = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/compcars/',
    ann_file='meta/train.txt',
    data_prefix='image/')
compcars_val = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/compcars/',
    ann_file='meta/val.txt',
    data_prefix='image/',
    test_mode=True)
compcars_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
compcars_num_classes = 431
