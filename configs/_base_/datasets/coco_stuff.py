# COCO-Stuff 164k (semantic segmentation, 171 classes), read by
# mmseg.COCOStuffDataset (label maps *_labelTrainIds.png with train ids
# 0..170, 255 = ignore; reduce_zero_label stays False). Get train2017.zip,
# val2017.zip and stuffthingmaps_trainval2017.zip from
# https://github.com/nightrome/cocostuff and convert the maps with mmseg's
# tools/dataset_converters/coco_stuff164k.py:
#
#   data/coco_stuff164k/
#   ├── images/{train2017,val2017}/*.jpg
#   └── annotations/{train2017,val2017}/*_labelTrainIds.png
coco_stuff_train = dict(
    type='mmseg.COCOStuffDataset',
    data_root='data/coco_stuff164k/',
    data_prefix=dict(
        img_path='images/train2017', seg_map_path='annotations/train2017'))
coco_stuff_val = dict(
    type='mmseg.COCOStuffDataset',
    data_root='data/coco_stuff164k/',
    data_prefix=dict(
        img_path='images/val2017', seg_map_path='annotations/val2017'),
    test_mode=True)
coco_stuff_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])
coco_stuff_num_classes = 171
# Paper Table 1 says 164k: the whole COCO-Stuff 164k release (118,287 train,
# 5,000 val and 40,670 unlabelled test images). Only the 118,287 train
# images have labels for training, so that is what this source holds.
coco_stuff_train_size = 118287
