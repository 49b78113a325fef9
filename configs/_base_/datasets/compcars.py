# CompCars, web-nature part (car model classification), read by
# mmpretrain.CustomDataset from annotation files. Request the data at
# http://mmlab.ie.cuhk.edu.hk/datasets/comp_cars/ and arrange it as
#
#   data/compcars/
#   ├── image/<make_id>/<model_id>/<year>/<name>.jpg ...
#   └── meta/
#       ├── train.txt   ("78/1/2014/3ac218c0c6c378.jpg 0")
#       └── val.txt
#
# Paper Table 1 gives CompCars 120k training images, far more than the
# 16,016 of the dataset's classification split (431 models). The closest
# set is every whole-car web-nature image (136,726 under image/, of 1,716
# models) less the 14,939 images of the classification split's test list:
# 121,787 images. meta/train.txt lists those, each path followed by its
# label, the index of its model_id among the 1,716 sorted model ids;
# meta/val.txt lists train_test_split/classification/test.txt the same way.
# The paper does not say how it reached 120k.
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
compcars_num_classes = 1716
# Paper Table 1: 120k (see above).
compcars_train_size = 121787
