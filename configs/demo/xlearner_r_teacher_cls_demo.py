# X-Learner_r on the demo data, stage 1 of 5: the classification teacher, a
# one-task Expansion run on the two demo classification sources. Run by the
# demo chain (configs/demo/xlearner_r_demo.py).
_base_ = '../_base_/xlearner_r/teacher_demo.py'

model = dict(
    task_models=dict(_delete_=True, cls={{_base_.model.task_models.cls}}))
train_dataloader = dict(_delete_=True, cls={{_base_.train_dataloader.cls}})
