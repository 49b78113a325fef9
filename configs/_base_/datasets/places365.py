# Places365-Challenge (scene classification, 365 classes), the version of the
# paper (Sec. 4.1, "Challenge version"; Table 1: 8.0M), read by
# mmpretrain.CustomDataset from annotation files. Get the challenge train
# images (train_large_places365challenge.tar, which unpacks to data_large/),
# the high-resolution val images and the file lists
# (filelist_places365-challenge.tar) from
# http://places2.csail.mit.edu/download.html and arrange them as
#
#   data/places365/
#   ├── data_large/a/airfield/00000001.jpg ...
#   ├── val_large/Places365_val_00000001.jpg ...
#   └── meta/
#       ├── train.txt   ("a/airfield/00000001.jpg 0")
#       └── val.txt     ("Places365_val_00000001.jpg 165")
#
# places365_train_challenge.txt starts each path with '/', which would make it
# absolute when joined with data_prefix: strip it, e.g.
#   sed 's#^/##' places365_train_challenge.txt > meta/train.txt
#   cp places365_val.txt meta/val.txt
# Places365-Standard (1,803,460 images, data_large_standard/ and
# places365_train_standard.txt) is the smaller alternative: set
# data_prefix='data_large_standard/' and places365_train_size = 1803460.
places365_train = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/places365/',
    ann_file='meta/train.txt',
    data_prefix='data_large/')
places365_val = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/places365/',
    ann_file='meta/val.txt',
    data_prefix='val_large/',
    test_mode=True)
places365_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
places365_num_classes = 365
# Paper Table 1: 8.0M. The lines of places365_train_challenge.txt.
places365_train_size = 8026628
