# What X-Learner_r's two Squeeze stages share (configs/xlearner/
# xlearner_r_squeeze_{cls,det}_half_r50.py): squeeze_r50.py with a
# HalfResNet-50 student (every width / sqrt(2), rounded to a multiple of 8:
# 11.80 M parameters, half a ResNet-50) and a one-task teacher, which has no
# reconciliation. Each stage keeps one task of the teacher and of the data;
# its teacher checkpoint (stage 1 or 2) is set by the chain
# (configs/xlearner/xlearner_r_r50.py) or on the command line.
_base_ = '../../xlearner/squeeze_r50.py'

model = dict(
    teacher=dict(neck=None),
    teacher_checkpoint=None,
    student=dict(type='HalfResNet'))
