# The tiny multi-source multi-task demo data written by
# `python tools/make_demo_data.py` (layout in that script's docstring), read
# by the stock dataset classes. Each task's sources have their own label
# space:
#   cls: folder_cls  (4 classes: class folders, mmpretrain.CustomDataset)
#        annfile_cls (3 classes: annotation files, mmpretrain.CustomDataset)
#   det: coco_a (3 categories), coco_b (2 categories)     (mmdet.CocoDataset)
#   seg: ade (4 of ADE20K's classes, 0 = ignore)       (mmseg.ADE20KDataset)
# Sources carry no pipeline: MultiSourceDataset's `pipeline` gives the task's
# pipeline to all of them. Input sizes are tiny for CPU runs: cls 64,
# det 128, seg 64.
demo_data_root = 'data/demo'

cls_train_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    # A milder crop range than ImageNet's (0.08, 1.0) keeps the class disk of
    # a 64x64 demo image in view.
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0)),
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackInputs'),
]
cls_test_pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    dict(type='mmpretrain.ResizeEdge', scale=73, edge='short'),
    dict(type='mmpretrain.CenterCrop', crop_size=64),
    dict(type='mmpretrain.PackInputs'),
]
det_train_pipeline = [
    dict(type='mmdet.LoadImageFromFile'),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=True),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='mmdet.PackDetInputs'),
]
det_test_pipeline = [
    dict(type='mmdet.LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(
        type='mmdet.PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
seg_train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    # No reduce_zero_label here: each dataset's own setting applies (True for
    # ADE20K, False for COCO-Stuff 164k), so one pipeline serves all sources.
    dict(type='mmseg.LoadAnnotations'),
    dict(
        type='mmseg.RandomResize',
        scale=(256, 64),
        ratio_range=(1.0, 1.5),
        keep_ratio=True),
    dict(type='mmseg.RandomCrop', crop_size=(64, 64), cat_max_ratio=0.75),
    dict(type='mmseg.RandomFlip', prob=0.5),
    dict(type='mmseg.PackSegInputs'),
]
seg_test_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='mmseg.Resize', scale=(256, 64), keep_ratio=True),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='mmseg.PackSegInputs'),
]

demo_folder_cls_train = dict(
    type='mmpretrain.CustomDataset',
    data_root=demo_data_root + '/folder_cls',
    data_prefix='train')  # classes: the sorted folder names
demo_folder_cls_val = dict(
    type='mmpretrain.CustomDataset',
    data_root=demo_data_root + '/folder_cls',
    data_prefix='val',
    test_mode=True)
demo_annfile_cls_train = dict(
    type='mmpretrain.CustomDataset',
    data_root=demo_data_root + '/annfile_cls',
    ann_file='meta/train.txt',
    data_prefix='images',
    metainfo=dict(classes=('horizontal', 'vertical', 'checker')))
demo_annfile_cls_val = dict(
    type='mmpretrain.CustomDataset',
    data_root=demo_data_root + '/annfile_cls',
    ann_file='meta/val.txt',
    data_prefix='images',
    metainfo=dict(classes=('horizontal', 'vertical', 'checker')),
    test_mode=True)
demo_coco_a_train = dict(
    type='mmdet.CocoDataset',
    data_root=demo_data_root + '/coco_a',
    ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'),
    metainfo=dict(classes=('red_box', 'green_box', 'blue_box')),
    filter_cfg=dict(filter_empty_gt=True, min_size=8))
demo_coco_a_val = dict(
    type='mmdet.CocoDataset',
    data_root=demo_data_root + '/coco_a',
    ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'),
    metainfo=dict(classes=('red_box', 'green_box', 'blue_box')),
    test_mode=True)
demo_coco_b_train = dict(
    type='mmdet.CocoDataset',
    data_root=demo_data_root + '/coco_b',
    ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'),
    metainfo=dict(classes=('cyan_disk', 'magenta_disk')),
    filter_cfg=dict(filter_empty_gt=True, min_size=8))
demo_coco_b_val = dict(
    type='mmdet.CocoDataset',
    data_root=demo_data_root + '/coco_b',
    ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'),
    metainfo=dict(classes=('cyan_disk', 'magenta_disk')),
    test_mode=True)
# ADE20KDataset takes a subset of its 150 classes through `metainfo` and maps
# the other ADE ids to 255 (ignore); the label maps hold ADE ids 1..4.
demo_ade_train = dict(
    type='mmseg.ADE20KDataset',
    data_root=demo_data_root + '/ade',
    data_prefix=dict(
        img_path='images/training', seg_map_path='annotations/training'),
    metainfo=dict(classes=('wall', 'building', 'sky', 'floor')))
demo_ade_val = dict(
    type='mmseg.ADE20KDataset',
    data_root=demo_data_root + '/ade',
    data_prefix=dict(
        img_path='images/validation', seg_map_path='annotations/validation'),
    metainfo=dict(classes=('wall', 'building', 'sky', 'floor')),
    test_mode=True)

# top-5 needs at least 5 classes.
demo_folder_cls_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, ))
demo_annfile_cls_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, ))
demo_coco_a_evaluator = dict(
    type='mmdet.CocoMetric',
    ann_file=demo_data_root + '/coco_a/annotations/instances_val.json',
    metric='bbox',
    format_only=False)
demo_coco_b_evaluator = dict(
    type='mmdet.CocoMetric',
    ann_file=demo_data_root + '/coco_b/annotations/instances_val.json',
    metric='bbox',
    format_only=False)
demo_ade_evaluator = dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])

demo_num_classes = dict(folder_cls=4, annfile_cls=3, coco_a=3, coco_b=2, ade=4)

# The train size of each demo source per task (tools/make_demo_data.py
# writes 32 training images per source), as MultiSourceDataset's
# expected_sizes takes them.
demo_cls_train_sizes = dict(folder_cls=32, annfile_cls=32)
demo_det_train_sizes = dict(coco_a=32, coco_b=32)
demo_seg_train_sizes = dict(ade=32)
