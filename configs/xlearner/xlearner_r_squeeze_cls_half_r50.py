# X-Learner_r, stage 3 of 5: the classification teacher (stage 1) distilled
# into a HalfResNet-50 on the classification data (labels unused): one
# guidance layer maps the student's last level (1440 channels) to the
# teacher's F^cls (2048). The whole chain: configs/xlearner/xlearner_r_r50.py;
# this stage alone:
#
#   bash tools/dist_train.sh configs/xlearner/xlearner_r_squeeze_cls_half_r50.py 8 \
#       --cfg-options model.teacher_checkpoint=work_dirs/xlearner_r_r50/teacher_cls/iter_150000.pth
_base_ = '../_base_/xlearner_r/squeeze_half_r50.py'

model = dict(teacher=dict(task_models=dict(
    _delete_=True, cls={{_base_.model.teacher.task_models.cls}})))
train_dataloader = dict(_delete_=True, cls={{_base_.train_dataloader.cls}})
