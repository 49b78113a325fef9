# The semantic segmentation task of the paper's "X-Learner w/ seg" setting
# (Sec. 4.1, Tab. 2): ADE20K (150 classes) and COCO-Stuff 164k (171 classes),
# each with its own UPerNet head (mmseg's stock ADE20K head for non-dilated
# ResNets, reading all four levels), on 512x512 crops. The paper names the
# sources, not the head; a non-dilated head is needed because reconciliation
# joins streams of the same strides. A recipe adds the task by these names
# (configs/xlearner/expansion_r50_seg.py, squeeze_r50_seg.py):
#
#   model.task_models.seg          = seg_task_model
#   train_dataloader.seg           = seg_train_loader
#   val_dataloader.{ade20k,coco_stuff} = {ade20k,coco_stuff}_val_loader
_base_ = ['../datasets/ade20k.py', '../datasets/coco_stuff.py']

seg_train_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    # No reduce_zero_label here: each dataset's own setting applies (True for
    # ADE20K, False for COCO-Stuff 164k), so one pipeline serves all sources.
    dict(type='mmseg.LoadAnnotations'),
    dict(
        type='mmseg.RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='mmseg.RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
    dict(type='mmseg.RandomFlip', prob=0.5),
    dict(type='mmseg.PhotoMetricDistortion'),
    dict(type='mmseg.PackSegInputs'),
]
seg_test_pipeline = [
    dict(type='mmseg.LoadImageFromFile'),
    dict(type='mmseg.Resize', scale=(2048, 512), keep_ratio=True),
    # After Resize: the ground truth is evaluated at its original size.
    dict(type='mmseg.LoadAnnotations'),
    dict(type='mmseg.PackSegInputs'),
]

seg_task_model = dict(
    type='mmseg.EncoderDecoder',
    _scope_='mmseg',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
        seg_pad_val=255, size=(512, 512)),
    # One UPerNet head per source (their label spaces differ), on the four
    # levels of the segmentation stream.
    decode_head=dict(
        type='xlearner_mm.MultiSourceDecodeHead',
        shared=dict(
            type='UPerHead',
            in_channels=[256, 512, 1024, 2048],
            in_index=[0, 1, 2, 3],
            pool_scales=(1, 2, 3, 6),
            channels=512,
            dropout_ratio=0.1,
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        heads=dict(
            ade20k=dict(num_classes={{_base_.ade20k_num_classes}}),
            coco_stuff=dict(num_classes={{_base_.coco_stuff_num_classes}}))),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# Per GPU: 4 crops (8 GPUs: 32), 2 of each source on average, so that each
# source's UPerNet head trains on mmseg's ADE20K batch (2 per GPU, 16 on 8
# GPUs). With 2 crops per GPU each head would get 1 crop per GPU, on which
# the BN of its pooling module (a 1x1 map) cannot train ("Expected more than
# 1 value per channel"), as the rehearsal (tools/rehearse.py) showed.
seg_train_loader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    sampler=dict(type='SourceMixSampler', source_ratio=[1, 1]),
    dataset=dict(
        type='MultiSourceDataset', task='seg', pipeline=seg_train_pipeline,
        sources=dict(ade20k={{_base_.ade20k_train}},
                     coco_stuff={{_base_.coco_stuff_train}})))

# One validation loader per source (its metric is reported as <source>/mIoU).
__val_loader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False))
ade20k_val_loader = dict(
    __val_loader,
    dataset=dict(
        type='MultiSourceDataset', task='seg', pipeline=seg_test_pipeline,
        sources=dict(ade20k={{_base_.ade20k_val}})))
coco_stuff_val_loader = dict(
    __val_loader,
    dataset=dict(
        ade20k_val_loader['dataset'],
        sources=dict(coco_stuff={{_base_.coco_stuff_val}})))
