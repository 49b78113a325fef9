# The demo's check that the exported backbone works downstream: mmseg's
# stock DeepLabV3 R50b-D8 config (unmodified, from the installed package; its
# ResNetV1b backbone takes the demo's V1b export) with the backbone pointed at
# the demo export, trained for one iteration on the demo's ADE-style source.
# Only the data, the crop and the schedule change, so that it runs on a CPU
# in seconds:
#
#   python tools/train.py configs/demo/deeplabv3_r50b_export_demo.py
_base_ = 'mmseg::deeplabv3/deeplabv3_r50b-d8_4xb2-80k_cityscapes-512x1024.py'

export_checkpoint = 'work_dirs/demo/export/xlearner_r50.pth'
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    # The stock `pretrained` would load torchvision://resnet50.
    pretrained=None,
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=export_checkpoint)))

train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='ADE20KDataset',
        data_root='data/demo/ade',
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        metainfo=dict(classes=('wall', 'building', 'sky', 'floor')),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='RandomCrop', crop_size=crop_size),
            dict(type='PackSegInputs'),
        ]))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=1)
param_scheduler = []
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=1))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
