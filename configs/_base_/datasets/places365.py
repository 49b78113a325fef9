# Places365-Standard (scene classification, 365 classes), read by
# mmpretrain.CustomDataset from annotation files. Get the high-resolution
# train and val images and the file lists (filelist_places365-standard.tar)
# from http://places2.csail.mit.edu/download.html and arrange them as
#
#   data/places365/
#   ├── data_large_standard/a/airfield/00000001.jpg ...
#   ├── val_large/Places365_val_00000001.jpg ...
#   └── meta/
#       ├── train.txt   ("a/airfield/00000001.jpg 0")
#       └── val.txt     ("Places365_val_00000001.jpg 165")
#
# places365_train_standard.txt starts each path with '/', which would make it
# absolute when joined with data_prefix: strip it, e.g.
#   sed 's#^/##' places365_train_standard.txt > meta/train.txt
#   cp places365_val.txt meta/val.txt
places365_train = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/places365/',
    ann_file='meta/train.txt',
    data_prefix='data_large_standard/')
places365_val = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/places365/',
    ann_file='meta/val.txt',
    data_prefix='val_large/',
    test_mode=True)
places365_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
places365_num_classes = 365
