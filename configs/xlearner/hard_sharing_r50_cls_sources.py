# Hard-sharing in the "+ Cls Sources" setting (paper Tab. 3): the one shared
# ResNet-50 of configs/xlearner/hard_sharing_r50.py on the data and heads of
# configs/xlearner/expansion_r50_cls_sources.py.
#
#   bash tools/dist_train.sh configs/xlearner/hard_sharing_r50_cls_sources.py 8
_base_ = './expansion_r50_cls_sources.py'

model = dict(backbone=dict(shared=True), neck=None)
custom_hooks = [dict(type='RandomStateHook')]
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={'_delete_': True, 'task_models.det.': dict(lr_mult=0.1)}))
