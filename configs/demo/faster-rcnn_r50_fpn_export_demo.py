# The demo's check that the exported backbone works downstream: mmdet's
# stock Faster R-CNN R50-FPN PASCAL VOC config (unmodified, from the
# installed package) with its backbone pointed at the demo export, trained
# for one iteration on the demo's COCO-json source coco_a. Only the data and
# the schedule change, so that it runs on a CPU in seconds:
#
#   python tools/train.py configs/demo/faster-rcnn_r50_fpn_export_demo.py
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'

export_checkpoint = 'work_dirs/demo/export/xlearner_r50.pth'
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=export_checkpoint)))

demo_root = 'data/demo/coco_a/'
train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='CocoDataset',
        data_root=demo_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=('red_box', 'green_box', 'blue_box')),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=(128, 128), keep_ratio=True),
            dict(type='PackDetInputs'),
        ]))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1)
param_scheduler = []
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=1))
log_processor = dict(by_epoch=False)
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
