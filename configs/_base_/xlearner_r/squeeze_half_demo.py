# What the demo Squeeze stages of X-Learner_r share (configs/demo/
# xlearner_r_squeeze_{cls,det}_demo.py): configs/demo/squeeze_demo.py with a
# one-task teacher (a demo teacher, without reconciliation) and, as student,
# the demo streams' ResNet-18 at 16 channels scaled by 1 / sqrt(2):
# HalfResNet-18 with levels of 8, 24, 48 and 88 channels. 3 iterations; the
# teacher checkpoint is set by the chain (configs/demo/xlearner_r_demo.py).
_base_ = '../../demo/squeeze_demo.py'

max_iters = 3
model = dict(
    teacher=dict(neck=None),
    teacher_checkpoint=None,
    student=dict(
        _delete_=True, type='HalfResNet', depth=18, base_channels=16,
        norm_eval=False))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=max_iters))
