# The detection fine-tune of the demo transfer suite (configs/transfer/demo.py):
# mmdet's stock Faster R-CNN R50-FPN VOC config (through
# faster-rcnn_r50_fpn_export_demo.py, which swaps only its data and schedule)
# trained for 4 iterations on the demo's coco_a train split and validated with
# the stock VOCMetric (mAP, 11 points) on its val split, the demo's "test set".
# tools/transfer.py sets the backbone's weights and the learning rate, and
# holds out part of train to choose the learning rate.
_base_ = './faster-rcnn_r50_fpn_export_demo.py'

# A handful of boxes per image: fewer proposals and sampled RoIs than the
# stock 2000 / 1000 and 512, which cost a CPU most of the time.
model = dict(
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))

image_scale = (96, 96)
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=image_scale, keep_ratio=True),
        dict(type='PackDetInputs'),
    ]))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
val_dataloader = dict(
    _delete_=True,
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        data_root='data/demo/coco_a/',
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=('red_box', 'green_box', 'blue_box')),
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='11points')
max_iters = 4
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(_delete_=True, type='ValLoop')
# No checkpoints: a 4-iteration job restarts sooner than it reloads
# hundreds of megabytes.
default_hooks = dict(
    logger=dict(interval=2),
    checkpoint=dict(interval=-1, save_last=False))
