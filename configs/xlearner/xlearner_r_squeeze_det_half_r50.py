# X-Learner_r, stage 4 of 5: the detection teacher (stage 2) distilled into a
# HalfResNet-50 on the detection data (labels unused), as stage 3 does for
# classification. The whole chain: configs/xlearner/xlearner_r_r50.py; this
# stage alone:
#
#   bash tools/dist_train.sh configs/xlearner/xlearner_r_squeeze_det_half_r50.py 8 \
#       --cfg-options model.teacher_checkpoint=work_dirs/xlearner_r_r50/teacher_det/iter_150000.pth
_base_ = '../_base_/xlearner_r/squeeze_half_r50.py'

model = dict(teacher=dict(task_models=dict(
    _delete_=True, det={{_base_.model.teacher.task_models.det}})))
train_dataloader = dict(_delete_=True, det={{_base_.train_dataloader.det}})
