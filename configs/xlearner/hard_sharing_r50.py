# Hard-sharing, the paper's multi-task baseline (Tab. 2, 3, 6; Fig. 1 b):
# one ResNet-50 shared by all tasks, with the heads, data and Eq. (1) loss of
# configs/xlearner/expansion_r50.py, and no reconciliation, no tau phases and
# no Squeeze Stage. Every task's batch goes through the one stream
# (ExpandedBackbone shared=True), so every task's loss trains it.
#
#   bash tools/dist_train.sh configs/xlearner/hard_sharing_r50.py 8
#   # the shared backbone is the pre-trained model (no --task needed):
#   python tools/export_backbone.py work_dirs/hard_sharing_r50/iter_150000.pth hard_sharing_r50.pth
_base_ = './expansion_r50.py'

model = dict(backbone=dict(shared=True), neck=None)
# Trained jointly on Eq. (1) from the first iteration: no separate phase.
custom_hooks = [dict(type='RandomStateHook')]
# The shared backbone trains at the base lr (it serves every task); the
# detection heads keep Faster R-CNN's 0.02.
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={'_delete_': True, 'task_models.det.': dict(lr_mult=0.1)}))
