# The Squeeze Stage (paper Sec. 3.3) at toy size: a ResNet-50 student learns
# the task features F^t of the demo's expanded model (configs/demo/
# expansion_demo.py, loaded from its checkpoint) on the same demo data, whose
# labels are unused. Trains on 2 CPU cores in a few minutes:
#
#   python tools/train.py configs/demo/expansion_demo.py \
#       --work-dir work_dirs/demo/expansion
#   python tools/train.py configs/demo/squeeze_demo.py \
#       --cfg-options model.teacher_checkpoint=work_dirs/demo/expansion/iter_120.pth
#
# The student is a plain V1b ResNet-50 (mmdet.ResNet) on purpose: the demo
# exports it into stock R50 mmdet/mmseg configs afterwards. The Squeeze model
# has no heads, so there is no validation.
_base_ = './expansion_demo.py'

max_iters = 40
model = dict(
    _delete_=True,
    type='MultiTaskDistiller',
    teacher={{_base_.model}},
    teacher_checkpoint='work_dirs/demo/expansion/iter_120.pth',
    # mmdet.ResNet's defaults otherwise: levels (0, 1, 2, 3), BN, pytorch
    # style; one guidance layer per task on the last level (the default).
    student=dict(type='mmdet.ResNet', depth=50, norm_eval=False))

# No reconciliation switch: the teacher is the model after tau.
custom_hooks = [dict(type='RandomStateHook')]
default_hooks = dict(checkpoint=dict(interval=20, max_keep_ckpts=2))
# The paper's SGD at its base lr 0.2. The hint loss is a mean over elements,
# so its gradients are small: at the expansion demo's 0.02 the loss barely
# moves in 40 iterations, at 0.2 it falls by about a third.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=1e-4))
# The paper's decay (x0.5, x0.2, x0.1 at 50/70/90%) after a short warm-up.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='MultiStepLR', by_epoch=False, milestones=[20], gamma=0.5),
    dict(type='MultiStepLR', by_epoch=False, milestones=[28], gamma=0.2),
    dict(type='MultiStepLR', by_epoch=False, milestones=[36], gamma=0.1),
]
# train_dataloader: the expansion demo's, inherited.
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
