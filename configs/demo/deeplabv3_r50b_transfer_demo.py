# The segmentation fine-tune of the demo transfer suite
# (configs/transfer/demo.py): mmseg's stock DeepLabV3 R50b-D8 config (through
# deeplabv3_r50b_export_demo.py, which swaps only its data, crop and
# schedule) trained for 4 iterations on the demo's ADE-style training images
# and validated with mIoU on its validation images, the demo's "test set".
# tools/transfer.py sets the backbone's weights and the learning rate, and
# holds out part of train to choose the learning rate.
_base_ = './deeplabv3_r50b_export_demo.py'

val_dataloader = dict(
    _delete_=True,
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ADE20KDataset',
        data_root='data/demo/ade',
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        metainfo=dict(classes=('wall', 'building', 'sky', 'floor')),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs'),
        ]))
val_evaluator = dict(_delete_=True, type='IoUMetric', iou_metrics=['mIoU'])
max_iters = 4
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(_delete_=True, type='ValLoop')
# No checkpoints: a 4-iteration job restarts sooner than it reloads
# hundreds of megabytes.
default_hooks = dict(
    logger=dict(interval=2),
    checkpoint=dict(interval=-1, save_last=False))
