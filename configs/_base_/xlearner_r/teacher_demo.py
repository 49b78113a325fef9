# What the demo teachers of X-Learner_r share (configs/demo/
# xlearner_r_teacher_{cls,det}_demo.py): the demo model and data of
# cls_det_demo.py, one task at a time (so no reconciliation), trained for 4
# iterations, so that the whole demo chain (configs/demo/xlearner_r_demo.py)
# runs in about a minute on 2 CPU cores.
_base_ = './cls_det_demo.py'

max_iters = 4
model = dict(neck=None)
custom_hooks = [dict(type='RandomStateHook')]
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
