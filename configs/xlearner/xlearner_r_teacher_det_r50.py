# X-Learner_r, stage 2 of 5: the detection teacher, a one-task Expansion run
# of expansion_r50.py on the detection sources (COCO + Objects365): one
# ResNet-50 in Faster R-CNN with the shared FPN and RPN and one RoI head per
# source, at expansion_r50's detection lr (0.2 x 0.1). The whole chain:
# configs/xlearner/xlearner_r_r50.py; this stage alone:
#
#   bash tools/dist_train.sh configs/xlearner/xlearner_r_teacher_det_r50.py 8 \
#       --work-dir work_dirs/xlearner_r_r50/teacher_det
_base_ = './expansion_r50.py'

model = dict(
    neck=None,
    task_models=dict(_delete_=True, det={{_base_.model.task_models.det}}))
custom_hooks = [dict(type='RandomStateHook')]
train_dataloader = dict(_delete_=True, det={{_base_.train_dataloader.det}})
val_dataloader = dict(
    _delete_=True,
    coco={{_base_.val_dataloader.coco}},
    objects365={{_base_.val_dataloader.objects365}})
val_evaluator = dict(
    _delete_=True,
    coco={{_base_.val_evaluator.coco}},
    objects365={{_base_.val_evaluator.objects365}})
test_dataloader = val_dataloader
test_evaluator = val_evaluator
