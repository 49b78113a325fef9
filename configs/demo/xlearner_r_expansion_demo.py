# X-Learner_r on the demo data, stage 5 of 5: the demo Expansion Stage
# (classification and detection) on two HalfResNet-18 streams (levels of 8,
# 24, 48 and 88 channels), each initialised from its task's demo student,
# for 4 iterations with the tau switch at 2. Run by the demo chain
# (configs/demo/xlearner_r_demo.py), which sets the students' checkpoints.
_base_ = '../_base_/xlearner_r/cls_det_demo.py'

max_iters = 4
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='ReconciliationSwitchHook', tau=2),
]
half_widths = [8, 24, 48, 88]
student = dict(type='ZooPretrained', checkpoint=None)
model = dict(
    backbone=dict(
        backbone=dict(type='HalfResNet'),
        stream_overrides=dict(
            _delete_=True,
            cls=dict(init_cfg=student),
            det=dict(init_cfg=student))),
    task_models=dict(
        cls=dict(head=dict(shared=dict(in_channels=half_widths[-1]))),
        det=dict(neck=dict(in_channels=half_widths))))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
