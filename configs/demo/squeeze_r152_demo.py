# The Squeeze Stage of X-Learner_R152 at toy size: a ResNet-152 student at
# 1/8 width distilled from configs/demo/expansion_r152_demo.py (the teacher
# builds only its streams, neck and data preprocessors, so its heads need no
# change).
#
#   python tools/train.py configs/demo/squeeze_r152_demo.py
_base_ = './squeeze_demo.py'

stream = dict(depth=152, base_channels=8)
model = dict(
    teacher=dict(backbone=dict(backbone=stream)),
    teacher_checkpoint='work_dirs/demo/expansion_r152/iter_120.pth',
    student=stream)
