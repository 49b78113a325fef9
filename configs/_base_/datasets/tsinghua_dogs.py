# Tsinghua Dogs (fine-grained dog breed classification, 130 classes), read by
# mmpretrain.CustomDataset from annotation files. Get the low-resolution
# images and TrainValSplit from https://cg.cs.tsinghua.edu.cn/ThuDogs/ and
# arrange them as
#
#   data/tsinghua_dogs/
#   ├── low-resolution/<breed folder>/*.jpg ...   (130 folders)
#   └── meta/
#       ├── train.txt   ("<breed folder>/<name>.jpg <label>")
#       └── val.txt
#
# The lists are TrainAndValList/train.lst and validation.lst with the
# leading './low-resolution/' removed and the label (the index of the breed
# folder among the sorted folder names) appended.
tsinghua_dogs_train = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/tsinghua_dogs/',
    ann_file='meta/train.txt',
    data_prefix='low-resolution/')
tsinghua_dogs_val = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/tsinghua_dogs/',
    ann_file='meta/val.txt',
    data_prefix='low-resolution/',
    test_mode=True)
tsinghua_dogs_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
tsinghua_dogs_num_classes = 130
# Paper Table 1: 65k. TrainAndValList/train.lst: the 70,428 images less the
# 5,200 (40 per breed) of validation.lst.
tsinghua_dogs_train_size = 65228
