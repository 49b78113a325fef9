# Hard-sharing (configs/xlearner/hard_sharing_r50.py) at toy size: the model
# and data of configs/demo/expansion_demo.py with one stream shared by the
# three tasks, no reconciliation and no tau phases. It has no Squeeze Stage:
# export its checkpoint directly.
#
#   python tools/train.py configs/demo/hard_sharing_demo.py
_base_ = './expansion_demo.py'

model = dict(backbone=dict(shared=True), neck=None)
custom_hooks = [dict(type='RandomStateHook')]
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={'_delete_': True, 'task_models.det.': dict(lr_mult=0.5)}))
