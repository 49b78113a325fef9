# X-Learner_r on the demo data, stage 4 of 5: the demo detection teacher
# distilled into a HalfResNet-18 on the detection data. Run by the demo
# chain (configs/demo/xlearner_r_demo.py).
_base_ = '../_base_/xlearner_r/squeeze_half_demo.py'

model = dict(teacher=dict(task_models=dict(
    _delete_=True, det={{_base_.model.teacher.task_models.det}})))
train_dataloader = dict(_delete_=True, det={{_base_.train_dataloader.det}})
