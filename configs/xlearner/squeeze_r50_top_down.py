# The Squeeze Stage of X-Learner_t (paper Tab. 6): a ResNet-50 distilled from
# configs/xlearner/expansion_r50_top_down.py.
#
#   bash tools/dist_train.sh configs/xlearner/squeeze_r50_top_down.py 8
_base_ = './squeeze_r50.py'

model = dict(
    teacher=dict(neck=dict(direction='top_down')),
    teacher_checkpoint='work_dirs/expansion_r50_top_down/iter_150000.pth')
