# X-Learner Expansion Stage, the paper's base setting (Sec. 4.1):
#   classification: ImageNet + iNat2021 + Places365
#   detection:      COCO + Objects365
# ResNet-50 sub-backbone per task, reconciliation layers between them, SGD
# (momentum 0.9, wd 1e-4, base lr 0.2), multi-step decay x0.5/x0.2/x0.1 at
# 50/70/90% of the iterations.
#
#   bash tools/dist_train.sh configs/xlearner/expansion_r50.py 8
#
# Batch sizes are per GPU (8 GPUs: 512 classification and 16 detection
# images per iteration). Data layout per source: configs/_base_/datasets/*.py.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/schedules/expansion_multistep.py',
    '../_base_/datasets/pipelines.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/datasets/inat2021.py',
    '../_base_/datasets/places365.py',
    '../_base_/datasets/coco.py',
    '../_base_/datasets/objects365.py',
]

# Algorithm 1: the sub-backbones train separately for the first tau
# iterations, then jointly with reconciliation (the paper gives no value).
tau = 15000
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='ReconciliationSwitchHook', tau=tau),
]

norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='XLearner',
    backbone=dict(
        type='ExpandedBackbone',
        backbone=dict(
            type='mmdet.ResNet',
            depth=50,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_cfg=norm_cfg,
            norm_eval=False,
            style='pytorch'),
        # e.g. dict(det=dict(init_cfg=dict(type='Pretrained',
        #     checkpoint='faster_rcnn.pth', prefix='backbone.')))
        stream_overrides=None),
    neck=dict(type='ReconciliationNeck', groups=32),
    task_models=dict(
        cls=dict(
            type='mmpretrain.ImageClassifier',
            _scope_='mmpretrain',
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='xlearner_mm.MultiSourceClsHead',
                shared=dict(
                    type='LinearClsHead',
                    in_channels=2048,
                    loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
                    topk=(1, 5)),
                heads=dict(
                    imagenet=dict(num_classes={{_base_.imagenet_num_classes}}),
                    inat2021=dict(num_classes={{_base_.inat2021_num_classes}}),
                    places365=dict(num_classes={{_base_.places365_num_classes}})))),
        det=dict(
            type='mmdet.FasterRCNN',
            _scope_='mmdet',
            data_preprocessor=dict(
                type='DetDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True,
                pad_size_divisor=32),
            neck=dict(
                type='FPN',
                in_channels=[256, 512, 1024, 2048],
                out_channels=256,
                num_outs=5),
            rpn_head=dict(
                type='RPNHead',
                in_channels=256,
                feat_channels=256,
                anchor_generator=dict(
                    type='AnchorGenerator',
                    scales=[8],
                    ratios=[0.5, 1.0, 2.0],
                    strides=[4, 8, 16, 32, 64]),
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[.0, .0, .0, .0],
                    target_stds=[1.0, 1.0, 1.0, 1.0]),
                loss_cls=dict(
                    type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
            # FPN and the class-agnostic RPN are shared by the detection
            # sources; each source has its own RoI head (box classifier).
            roi_head=dict(
                type='xlearner_mm.MultiSourceRoIHead',
                shared=dict(
                    type='StandardRoIHead',
                    bbox_roi_extractor=dict(
                        type='SingleRoIExtractor',
                        roi_layer=dict(
                            type='RoIAlign', output_size=7, sampling_ratio=0),
                        out_channels=256,
                        featmap_strides=[4, 8, 16, 32]),
                    bbox_head=dict(
                        type='Shared2FCBBoxHead',
                        in_channels=256,
                        fc_out_channels=1024,
                        roi_feat_size=7,
                        bbox_coder=dict(
                            type='DeltaXYWHBBoxCoder',
                            target_means=[0., 0., 0., 0.],
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
                        reg_class_agnostic=False,
                        loss_cls=dict(
                            type='CrossEntropyLoss',
                            use_sigmoid=False,
                            loss_weight=1.0),
                        loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
                heads=dict(
                    coco=dict(bbox_head=dict(
                        num_classes={{_base_.coco_num_classes}})),
                    objects365=dict(bbox_head=dict(
                        num_classes={{_base_.objects365_num_classes}})))),
            train_cfg=dict(
                rpn=dict(
                    assigner=dict(
                        type='MaxIoUAssigner',
                        pos_iou_thr=0.7,
                        neg_iou_thr=0.3,
                        min_pos_iou=0.3,
                        match_low_quality=True,
                        ignore_iof_thr=-1),
                    sampler=dict(
                        type='RandomSampler',
                        num=256,
                        pos_fraction=0.5,
                        neg_pos_ub=-1,
                        add_gt_as_proposals=False),
                    allowed_border=-1,
                    pos_weight=-1,
                    debug=False),
                rpn_proposal=dict(
                    nms_pre=2000,
                    max_per_img=1000,
                    nms=dict(type='nms', iou_threshold=0.7),
                    min_bbox_size=0),
                rcnn=dict(
                    assigner=dict(
                        type='MaxIoUAssigner',
                        pos_iou_thr=0.5,
                        neg_iou_thr=0.5,
                        min_pos_iou=0.5,
                        match_low_quality=False,
                        ignore_iof_thr=-1),
                    sampler=dict(
                        type='RandomSampler',
                        num=512,
                        pos_fraction=0.25,
                        neg_pos_ub=-1,
                        add_gt_as_proposals=True),
                    pos_weight=-1,
                    debug=False)),
            test_cfg=dict(
                rpn=dict(
                    nms_pre=1000,
                    max_per_img=1000,
                    nms=dict(type='nms', iou_threshold=0.7),
                    min_bbox_size=0),
                rcnn=dict(
                    score_thr=0.05,
                    nms=dict(type='nms', iou_threshold=0.5),
                    max_per_img=100)))))

# "Use sub-tasks' best hyper-parameters" (paper Sec. 3.2): the detection
# stream, its reconciliation inputs and its heads train at Faster R-CNN's
# usual 0.02 (base lr 0.2 x 0.1); classification at the base lr.
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'backbone.streams.det': dict(lr_mult=0.1),
            'neck.reconcilers.det': dict(lr_mult=0.1),
            'task_models.det': dict(lr_mult=0.1),
        }),
    clip_grad=None)

train_dataloader = dict(
    cls=dict(
        batch_size=64,
        num_workers=8,
        persistent_workers=True,
        sampler=dict(type='SourceMixSampler', batch_size=64, source_ratio='size'),
        dataset=dict(
            type='MultiSourceDataset',
            task='cls',
            pipeline={{_base_.cls_train_pipeline}},
            sources=dict(
                imagenet={{_base_.imagenet_train}},
                inat2021={{_base_.inat2021_train}},
                places365={{_base_.places365_train}}))),
    det=dict(
        batch_size=2,
        num_workers=2,
        persistent_workers=True,
        sampler=dict(type='SourceMixSampler', batch_size=2, source_ratio=[1, 1]),
        dataset=dict(
            type='MultiSourceDataset',
            task='det',
            pipeline={{_base_.det_train_pipeline}},
            sources=dict(
                coco={{_base_.coco_train}},
                objects365={{_base_.objects365_train}}))))


def _val_loader(task, name, source, pipeline, batch_size):
    return dict(
        batch_size=batch_size,
        num_workers=2,
        persistent_workers=True,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='MultiSourceDataset',
            task=task,
            pipeline=pipeline,
            sources={name: source}))


val_dataloader = dict(
    imagenet=_val_loader('cls', 'imagenet', {{_base_.imagenet_val}},
                         {{_base_.cls_test_pipeline}}, 64),
    inat2021=_val_loader('cls', 'inat2021', {{_base_.inat2021_val}},
                         {{_base_.cls_test_pipeline}}, 64),
    places365=_val_loader('cls', 'places365', {{_base_.places365_val}},
                          {{_base_.cls_test_pipeline}}, 64),
    coco=_val_loader('det', 'coco', {{_base_.coco_val}},
                     {{_base_.det_test_pipeline}}, 1),
    objects365=_val_loader('det', 'objects365', {{_base_.objects365_val}},
                           {{_base_.det_test_pipeline}}, 1))
val_evaluator = dict(
    imagenet={{_base_.imagenet_evaluator}},
    inat2021={{_base_.inat2021_evaluator}},
    places365={{_base_.places365_evaluator}},
    coco={{_base_.coco_evaluator}},
    objects365={{_base_.objects365_evaluator}})
test_dataloader = val_dataloader
test_evaluator = val_evaluator
