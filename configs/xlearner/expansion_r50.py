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
    '../_base_/models/xlearner_r50_cls_det.py',
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

# "Use sub-tasks' best hyper-parameters" (paper Sec. 3.2): the detection
# stream, its reconciliation inputs and its heads train at Faster R-CNN's
# usual 0.02 (base lr 0.2 x 0.1); classification at the base lr.
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'backbone.streams.det.': dict(lr_mult=0.1),
            'neck.reconcilers.det.': dict(lr_mult=0.1),
            'task_models.det.': dict(lr_mult=0.1),
        }),
    clip_grad=None)

train_dataloader = dict(
    cls=dict(
        batch_size=64,
        num_workers=8,
        persistent_workers=True,
        sampler=dict(type='SourceMixSampler', source_ratio='size'),
        dataset=dict(
            type='MultiSourceDataset',
            task='cls',
            pipeline={{_base_.cls_train_pipeline}},
            sources=dict(
                imagenet={{_base_.imagenet_train}},
                inat2021={{_base_.inat2021_train}},
                places365={{_base_.places365_train}}),
            # Paper Table 1, as configs/_base_/datasets states them:
            # tools/check_data.py counts what is on disk against them.
            expected_sizes=dict(
                imagenet={{_base_.imagenet_train_size}},
                inat2021={{_base_.inat2021_train_size}},
                places365={{_base_.places365_train_size}}))),
    det=dict(
        batch_size=2,
        num_workers=2,
        persistent_workers=True,
        sampler=dict(type='SourceMixSampler', source_ratio=[1, 1]),
        dataset=dict(
            type='MultiSourceDataset',
            task='det',
            pipeline={{_base_.det_train_pipeline}},
            sources=dict(
                coco={{_base_.coco_train}},
                objects365={{_base_.objects365_train}}),
            expected_sizes=dict(
                coco={{_base_.coco_train_size}},
                objects365={{_base_.objects365_train_size}}))))


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
