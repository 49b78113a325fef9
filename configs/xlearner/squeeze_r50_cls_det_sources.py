# The Squeeze Stage of the "+ Cls & Det Sources" setting (paper Tab. 3): a
# ResNet-50 distilled from configs/xlearner/expansion_r50_cls_det_sources.py
# on its data.
#
#   bash tools/dist_train.sh configs/xlearner/squeeze_r50_cls_det_sources.py 8
_base_ = './squeeze_r50_cls_sources.py'

model = dict(
    teacher_checkpoint='work_dirs/expansion_r50_cls_det_sources/'
    'iter_150000.pth')
train_dataloader = {{_base_.extra_det_train}}
