# ImageNet-1k (classification, 1000 classes), read by mmpretrain.ImageNet.
# Get ILSVRC2012 from https://image-net.org/download.php and arrange it as
#
#   data/imagenet/
#   ├── train/<wnid>/*.JPEG      (1000 class folders)
#   ├── val/*.JPEG               (50000 images, flat)
#   └── meta/
#       ├── train.txt            ("n01440764/n01440764_10026.JPEG 0", optional)
#       └── val.txt              ("ILSVRC2012_val_00000001.JPEG 65")
#
# `split` makes mmpretrain.ImageNet read meta/<split>.txt when it exists and
# the class folders of <split>/ otherwise, so the flat val/ needs
# meta/val.txt (mmpretrain's docs link one).
imagenet_train = dict(
    type='mmpretrain.ImageNet', data_root='data/imagenet/', split='train')
imagenet_val = dict(
    type='mmpretrain.ImageNet',
    data_root='data/imagenet/',
    split='val',
    test_mode=True)
imagenet_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
imagenet_num_classes = 1000
# Paper Table 1: 1.3M. The ILSVRC2012 train set.
imagenet_train_size = 1281167
