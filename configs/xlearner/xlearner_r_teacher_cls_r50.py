# X-Learner_r (Squeeze-Expansion, paper Sec. 3.4; "X-Learner_s" in Fig. 3),
# stage 1 of 5: the classification teacher. "T task-specific teachers trained
# with multiple sources": a one-task Expansion run of expansion_r50.py on the
# classification sources (ImageNet + iNat2021 + Places365) with one ResNet-50
# and their three heads. One task has no reconciliation (no neck, no tau).
# The whole chain: configs/xlearner/xlearner_r_r50.py; this stage alone:
#
#   bash tools/dist_train.sh configs/xlearner/xlearner_r_teacher_cls_r50.py 8 \
#       --work-dir work_dirs/xlearner_r_r50/teacher_cls
_base_ = './expansion_r50.py'

model = dict(
    neck=None,
    task_models=dict(_delete_=True, cls={{_base_.model.task_models.cls}}))
custom_hooks = [dict(type='RandomStateHook')]
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True))
train_dataloader = dict(_delete_=True, cls={{_base_.train_dataloader.cls}})
val_dataloader = dict(
    _delete_=True,
    imagenet={{_base_.val_dataloader.imagenet}},
    inat2021={{_base_.val_dataloader.inat2021}},
    places365={{_base_.val_dataloader.places365}})
val_evaluator = dict(
    _delete_=True,
    imagenet={{_base_.val_evaluator.imagenet}},
    inat2021={{_base_.val_evaluator.inat2021}},
    places365={{_base_.val_evaluator.places365}})
test_dataloader = val_dataloader
test_evaluator = val_evaluator
