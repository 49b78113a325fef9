# configs/demo/expansion_demo.py with its classification and detection tasks
# only (the paper's base setting, T = 2) and without validation, which takes
# longer than these short runs: what X-Learner_r's demo teachers and final
# Expansion Stage (configs/demo/xlearner_r_*_demo.py) start from.
_base_ = '../../demo/expansion_demo.py'

model = dict(
    neck=dict(out_levels=dict(_delete_=True, cls=(3, ))),
    task_models=dict(
        _delete_=True,
        cls={{_base_.model.task_models.cls}},
        det={{_base_.model.task_models.det}}))
train_dataloader = dict(
    _delete_=True,
    cls={{_base_.train_dataloader.cls}},
    det={{_base_.train_dataloader.det}})
val_dataloader = val_evaluator = val_cfg = None
test_dataloader = test_evaluator = test_cfg = None
default_hooks = dict(logger=dict(interval=1))
