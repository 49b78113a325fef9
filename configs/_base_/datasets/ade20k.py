# ADE20K / SceneParsing (semantic segmentation, 150 classes), read by
# mmseg.ADE20KDataset (reduce_zero_label=True: label 0 is ignored). Get
# ADEChallengeData2016.zip from http://sceneparsing.csail.mit.edu/ and unzip
# it as
#
#   data/ade/ADEChallengeData2016/
#   ├── images/{training,validation}/*.jpg
#   └── annotations/{training,validation}/*.png   (0 = other, 1..150)
ade20k_train = dict(
    type='mmseg.ADE20KDataset',
    data_root='data/ade/ADEChallengeData2016/',
    data_prefix=dict(
        img_path='images/training', seg_map_path='annotations/training'))
ade20k_val = dict(
    type='mmseg.ADE20KDataset',
    data_root='data/ade/ADEChallengeData2016/',
    data_prefix=dict(
        img_path='images/validation', seg_map_path='annotations/validation'),
    test_mode=True)
ade20k_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
ade20k_num_classes = 150
# Paper Table 1: 20k. The images of images/training with their label map.
ade20k_train_size = 20210
