# X-Learner_p (paper Sec. 3.4, Tab. 6): the Squeeze Stage by unstructured
# magnitude pruning instead of distillation, following Liu et al., "Rethinking
# the Value of Network Pruning" (weight-level pruning, then fine-tuning).
#
# The expanded model of configs/xlearner/expansion_r50.py is loaded from its
# final checkpoint, its sub-backbones and reconciliation layers are pruned to
# one ResNet-50's number of conv weights under one global magnitude threshold
# (23.45M of 52.65M prunable weights kept, 55.45% sparsity; BN and biases are
# not pruned), and it is fine-tuned with the Expansion loss (paper Eq. 1) on
# the same data, the pruned weights held at zero:
#
#   bash tools/dist_train.sh configs/xlearner/prune_r50.py 8
#
# Or prune only (no fine-tuning):
#   python tools/prune.py configs/xlearner/expansion_r50.py \
#       work_dirs/expansion_r50/iter_150000.pth pruned.pth --keep-params one_stream
_base_ = ['./expansion_r50.py']

load_from = 'work_dirs/expansion_r50/iter_150000.pth'

# The pruned model is the reconciled expansion: reconciliation on from the
# first iteration (tau=0).
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='ReconciliationSwitchHook', tau=0),
    dict(type='MagnitudePruningHook', keep_params='one_stream', scope='global'),
]

# The paper gives no fine-tuning schedule. Fine-tuning runs for 10% of the
# Expansion schedule (15k iterations) at a tenth of its base lr (0.02, Liu et
# al. fine-tune at the small final learning rates of the original training),
# decayed like the Expansion Stage (x0.5, x0.2, x0.1 at 50/70/90%). No
# warm-up: the weights are trained. The detection lr_mult of the base applies.
max_iters = 15000
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[7500], gamma=0.5),
    dict(type='MultiStepLR', by_epoch=False, milestones=[10500], gamma=0.2),
    dict(type='MultiStepLR', by_epoch=False, milestones=[13500], gamma=0.1),
]
train_cfg = dict(max_iters=max_iters, val_interval=5000)
