# The Expansion Stage recipe of configs/xlearner/expansion_r50.py at toy size,
# on the generated demo data (python tools/make_demo_data.py), with all three
# tasks: classification (2 sources), detection (2 sources) and segmentation.
# Trains on 2 CPU cores in a few minutes:
#
#   python tools/train.py configs/demo/expansion_demo.py
_base_ = [
    '../_base_/models/xlearner_r50_cls_det.py',
    '../_base_/default_runtime.py',
    '../_base_/datasets/demo.py',
]

max_iters = 120
tau = 40  # Algorithm 1: separate sub-backbone training for 40 iterations
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='ReconciliationSwitchHook', tau=tau),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=60, max_keep_ckpts=2))
log_processor = dict(window_size=10)

# The model of configs/xlearner/expansion_r50.py, shrunk: a 4-stage
# ResNet-18 at 1/4 width (levels of 16, 32, 64 and 128 channels), narrow
# heads, the demo sources' label spaces, and a segmentation task added.
widths = [16, 32, 64, 128]
mean = [123.675, 116.28, 103.53]
std = [58.395, 57.12, 57.375]
model = dict(
    backbone=dict(backbone=dict(depth=18, base_channels=16)),
    # The FCN head reads only the last level (in_index=3), like the
    # classifier: no reconciliation layers into the levels below.
    neck=dict(groups=4, out_levels=dict(cls=(3, ), seg=(3, ))),
    task_models=dict(
        cls=dict(
            head=dict(
                shared=dict(in_channels=widths[-1], topk=(1, )),
                heads=dict(
                    _delete_=True,
                    folder_cls=dict(num_classes={{_base_.demo_num_classes.folder_cls}}),
                    annfile_cls=dict(num_classes={{_base_.demo_num_classes.annfile_cls}})))),
        det=dict(
            neck=dict(in_channels=widths, out_channels=32),
            rpn_head=dict(
                in_channels=32,
                feat_channels=32,
                anchor_generator=dict(scales=[4])),
            roi_head=dict(
                shared=dict(
                    bbox_roi_extractor=dict(out_channels=32),
                    bbox_head=dict(in_channels=32, fc_out_channels=64)),
                heads=dict(
                    _delete_=True,
                    coco_a=dict(bbox_head=dict(num_classes={{_base_.demo_num_classes.coco_a}})),
                    coco_b=dict(bbox_head=dict(num_classes={{_base_.demo_num_classes.coco_b}})))),
            train_cfg=dict(
                rpn=dict(sampler=dict(num=64)),
                rpn_proposal=dict(nms_pre=200, max_per_img=100),
                rcnn=dict(sampler=dict(num=64))),
            test_cfg=dict(
                rpn=dict(nms_pre=200, max_per_img=100),
                rcnn=dict(max_per_img=20))),
        seg=dict(
            type='mmseg.EncoderDecoder',
            _scope_='mmseg',
            data_preprocessor=dict(
                type='SegDataPreProcessor',
                mean=mean,
                std=std,
                bgr_to_rgb=True,
                pad_val=0,
                seg_pad_val=255,
                size=(64, 64)),
            decode_head=dict(
                type='xlearner_mm.MultiSourceDecodeHead',
                shared=dict(
                    type='FCNHead',
                    in_channels=widths[-1],
                    in_index=3,
                    channels=32,
                    num_convs=1,
                    concat_input=False,
                    dropout_ratio=0.1,
                    norm_cfg=dict(type='BN', requires_grad=True),
                    align_corners=False,
                    loss_decode=dict(
                        type='CrossEntropyLoss',
                        use_sigmoid=False,
                        loss_weight=1.0)),
                heads=dict(ade=dict(num_classes={{_base_.demo_num_classes.ade}}))),
            train_cfg=dict(),
            test_cfg=dict(mode='whole'))))

optim_wrapper = dict(
    type='OptimWrapper',
    # Checks that each task's custom key sets that task's parameters only.
    constructor='TaskOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(
        custom_keys={
            'backbone.streams.det.': dict(lr_mult=0.5),
            'neck.reconcilers.det.': dict(lr_mult=0.5),
            'task_models.det.': dict(lr_mult=0.5),
        }))
# The paper's decay: x0.5, x0.2, x0.1 at 50%, 70% and 90% of the iterations.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', by_epoch=False, milestones=[60], gamma=0.5),
    dict(type='MultiStepLR', by_epoch=False, milestones=[84], gamma=0.2),
    dict(type='MultiStepLR', by_epoch=False, milestones=[108], gamma=0.1),
]
train_cfg = dict(
    type='MultiTaskIterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='MultiTaskValLoop')
test_cfg = dict(type='MultiTaskTestLoop')


def _train_loader(task, batch_size, pipeline, sources, sizes):
    return dict(
        batch_size=batch_size,
        num_workers=1,
        persistent_workers=True,
        # The sampler composes batches of the loader's batch_size (the
        # multi-task loop passes it on): one source ratio per source.
        sampler=dict(type='SourceMixSampler', source_ratio=[1] * len(sources)),
        dataset=dict(
            type='MultiSourceDataset',
            task=task,
            pipeline=pipeline,
            sources=sources,
            # What tools/check_data.py counts on disk.
            expected_sizes=sizes))


train_dataloader = dict(
    cls=_train_loader(
        'cls', 8, {{_base_.cls_train_pipeline}},
        dict(folder_cls={{_base_.demo_folder_cls_train}},
             annfile_cls={{_base_.demo_annfile_cls_train}}),
        {{_base_.demo_cls_train_sizes}}),
    det=_train_loader(
        'det', 4, {{_base_.det_train_pipeline}},
        dict(coco_a={{_base_.demo_coco_a_train}},
             coco_b={{_base_.demo_coco_b_train}}),
        {{_base_.demo_det_train_sizes}}),
    seg=_train_loader(
        'seg', 4, {{_base_.seg_train_pipeline}},
        dict(ade={{_base_.demo_ade_train}}),
        {{_base_.demo_seg_train_sizes}}))


def _val_loader(task, name, source, pipeline):
    return dict(
        batch_size=4,
        num_workers=0,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='MultiSourceDataset',
            task=task,
            pipeline=pipeline,
            sources={name: source}))


val_dataloader = dict(
    folder_cls=_val_loader('cls', 'folder_cls', {{_base_.demo_folder_cls_val}},
                           {{_base_.cls_test_pipeline}}),
    annfile_cls=_val_loader('cls', 'annfile_cls', {{_base_.demo_annfile_cls_val}},
                            {{_base_.cls_test_pipeline}}),
    coco_a=_val_loader('det', 'coco_a', {{_base_.demo_coco_a_val}},
                       {{_base_.det_test_pipeline}}),
    coco_b=_val_loader('det', 'coco_b', {{_base_.demo_coco_b_val}},
                       {{_base_.det_test_pipeline}}),
    ade=_val_loader('seg', 'ade', {{_base_.demo_ade_val}},
                    {{_base_.seg_test_pipeline}}))
val_evaluator = dict(
    folder_cls={{_base_.demo_folder_cls_evaluator}},
    annfile_cls={{_base_.demo_annfile_cls_evaluator}},
    coco_a={{_base_.demo_coco_a_evaluator}},
    coco_b={{_base_.demo_coco_b_evaluator}},
    ade={{_base_.demo_ade_evaluator}})
test_dataloader = val_dataloader
test_evaluator = val_evaluator
