# X-Learner_p on the demo data: the demo Expansion model
# (configs/demo/expansion_demo.py, trained by `make demo` or
# `python tools/run_demo.py --work-dir work_dirs/demo/expansion`) pruned to
# one sub-backbone's number of conv weights by weight magnitude, then
# fine-tuned for 20 iterations with the pruned weights held at zero:
#
#   python tools/train.py configs/demo/prune_demo.py
_base_ = ['./expansion_demo.py']

load_from = 'work_dirs/demo/expansion/iter_120.pth'

max_iters = 20
# The pruned model is the reconciled expansion: reconciliation on from the
# first iteration (tau=0).
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='ReconciliationSwitchHook', tau=0),
    dict(type='MagnitudePruningHook', keep_params='one_stream', scope='global'),
]
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=10))
# The schedule of configs/xlearner/prune_r50.py: a tenth of the Expansion
# lr, x0.5/x0.2/x0.1 at 50/70/90% of the iterations, no warm-up.
optim_wrapper = dict(optimizer=dict(lr=0.002))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[10], gamma=0.5),
    dict(type='MultiStepLR', by_epoch=False, milestones=[14], gamma=0.2),
    dict(type='MultiStepLR', by_epoch=False, milestones=[18], gamma=0.1),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
