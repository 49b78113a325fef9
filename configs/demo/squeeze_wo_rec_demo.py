# The Squeeze Stage of "w/o Rec." at toy size: configs/demo/squeeze_demo.py
# with the teacher of configs/demo/expansion_wo_rec_demo.py.
#
#   python tools/train.py configs/demo/squeeze_wo_rec_demo.py
_base_ = './squeeze_demo.py'

model = dict(
    teacher=dict(neck=None),
    teacher_checkpoint='work_dirs/demo/expansion_wo_rec/iter_120.pth')
