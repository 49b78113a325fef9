# The Squeeze Stage of "X-Learner w/o Rec." (paper Tab. 5): a ResNet-50
# distilled from the streams of configs/xlearner/expansion_r50_wo_rec.py,
# each F^t being its plain stream E^t.
#
#   bash tools/dist_train.sh configs/xlearner/squeeze_r50_wo_rec.py 8
_base_ = './squeeze_r50.py'

model = dict(
    teacher=dict(neck=None),
    teacher_checkpoint='work_dirs/expansion_r50_wo_rec/iter_150000.pth')
