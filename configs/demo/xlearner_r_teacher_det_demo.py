# X-Learner_r on the demo data, stage 2 of 5: the detection teacher, a
# one-task Expansion run on the two demo detection sources. Run by the demo
# chain (configs/demo/xlearner_r_demo.py).
_base_ = '../_base_/xlearner_r/teacher_demo.py'

model = dict(
    task_models=dict(_delete_=True, det={{_base_.model.task_models.det}}))
train_dataloader = dict(_delete_=True, det={{_base_.train_dataloader.det}})
