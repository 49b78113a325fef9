# The Squeeze Stage of X-Learner_t at toy size: configs/demo/squeeze_demo.py
# with the teacher of configs/demo/expansion_top_down_demo.py.
#
#   python tools/train.py configs/demo/squeeze_top_down_demo.py
_base_ = './squeeze_demo.py'

model = dict(
    teacher=dict(neck=dict(direction='top_down')),
    teacher_checkpoint='work_dirs/demo/expansion_top_down/iter_120.pth')
