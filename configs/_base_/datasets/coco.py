# COCO 2017 detection (80 categories), read by mmdet.CocoDataset. Get
# train2017.zip, val2017.zip and annotations_trainval2017.zip from
# https://cocodataset.org/#download and arrange them as
#
#   data/coco/
#   ├── train2017/*.jpg
#   ├── val2017/*.jpg
#   └── annotations/instances_{train,val}2017.json
coco_train = dict(
    type='mmdet.CocoDataset',
    data_root='data/coco/',
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32))
coco_val = dict(
    type='mmdet.CocoDataset',
    data_root='data/coco/',
    ann_file='annotations/instances_val2017.json',
    data_prefix=dict(img='val2017/'),
    test_mode=True)
coco_evaluator = dict(
    type='mmdet.CocoMetric',
    ann_file='data/coco/annotations/instances_val2017.json',
    metric='bbox',
    format_only=False)
coco_num_classes = 80
# Paper Table 1: 118k. The images of instances_train2017.json.
coco_train_size = 118287
