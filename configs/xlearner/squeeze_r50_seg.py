# The Squeeze Stage of "X-Learner w/ seg" (paper Tab. 2): a ResNet-50
# distilled from the three streams of configs/xlearner/expansion_r50_seg.py
# (one guidance layer per task) on its data.
#
#   bash tools/dist_train.sh configs/xlearner/squeeze_r50_seg.py 8
_base_ = [
    './squeeze_r50.py',
    '../_base_/tasks/seg_ade20k_coco_stuff.py',
]

model = dict(
    teacher=dict(task_models=dict(seg={{_base_.seg_task_model}})),
    teacher_checkpoint='work_dirs/expansion_r50_seg/iter_150000.pth')
train_dataloader = dict(seg={{_base_.seg_train_loader}})
