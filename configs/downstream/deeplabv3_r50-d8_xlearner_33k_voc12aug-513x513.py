# Segmentation transfer of paper Sec. 4.2: DeepLabV3 (R50-D8) fine-tuned on
# PASCAL VOC 2012 + aug for 33k iterations at batch 16 (4 images x 4 GPUs)
# on 513x513 crops, SGD with momentum 0.9 and weight decay 1e-4. Everything
# else is the stock mmseg config.
#
# The stock backbone is ResNetV1c (deep stem), so this config takes an export
# with deep-stem keys (stem.*): a Squeeze checkpoint whose student is
# mmseg.ResNetV1c.
#
#   python tools/export_backbone.py work_dirs/squeeze_v1c/iter_N.pth \
#       work_dirs/export/xlearner_r50_v1c.pth
#   bash tools/dist_train.sh configs/downstream/deeplabv3_r50-d8_xlearner_33k_voc12aug-513x513.py 4
#
# A V1b export (conv1/bn1 keys, e.g. an mmdet.ResNet student) goes in with
# the V1b backbone, as mmseg's r50b configs do:
#   --cfg-options model.backbone.type=ResNet \
#       model.backbone.init_cfg.checkpoint=work_dirs/export/xlearner_r50.pth
# The paper searches the learning rate in [0.001, 0.07]: override
# optim_wrapper.optimizer.lr (the stock 0.01 is the default here).
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-40k_voc12aug-512x512.py'

crop_size = (513, 513)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    # The stock `pretrained` would load open-mmlab://resnet50_v1c.
    pretrained=None,
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/export/xlearner_r50_v1c.pth')))

# The stock training pipeline with 513x513 crops; the dataset list is
# restated because configs replace lists whole.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=crop_size),
    dict(type='PackSegInputs')
]
voc_root = 'data/VOCdevkit/VOC2012'
train_dataloader = dict(
    batch_size=4,
    dataset=dict(datasets=[
        dict(
            type='PascalVOCDataset',
            data_root=voc_root,
            data_prefix=dict(
                img_path='JPEGImages', seg_map_path='SegmentationClass'),
            ann_file='ImageSets/Segmentation/train.txt',
            pipeline=train_pipeline),
        dict(
            type='PascalVOCDataset',
            data_root=voc_root,
            data_prefix=dict(
                img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
            ann_file='ImageSets/Segmentation/aug.txt',
            pipeline=train_pipeline)
    ]))

max_iters = 33000
optim_wrapper = dict(optimizer=dict(weight_decay=1e-4))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters)
