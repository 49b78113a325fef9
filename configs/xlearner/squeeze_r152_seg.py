# The Squeeze Stage of X-Learner_R152 (paper Tab. 4): a ResNet-152 student
# distilled from configs/xlearner/expansion_r152_seg.py.
#
#   bash tools/dist_train.sh configs/xlearner/squeeze_r152_seg.py 8
_base_ = './squeeze_r50_seg.py'

model = dict(
    teacher=dict(backbone=dict(backbone=dict(depth=152))),
    teacher_checkpoint='work_dirs/expansion_r152_seg/iter_150000.pth',
    student=dict(depth=152))
