# X-Learner Squeeze Stage, the paper's base setting (Sec. 3.3, 4.1): a
# ResNet-50 student distilled, FitNets-style, from the expanded model of
# configs/xlearner/expansion_r50.py (classification + detection streams with
# reconciliation) on the same data, whose labels are unused. One guidance
# layer (1x1 conv + BN) per task maps the student's last level (C5, 2048
# channels) to the task's output feature F^t; the loss is the sum over tasks
# of the mean squared difference (Eq. 3-4), on every image of every task.
#
#   bash tools/dist_train.sh configs/xlearner/squeeze_r50.py 8 \
#       --cfg-options model.teacher_checkpoint=work_dirs/expansion_r50/iter_150000.pth
#
# Schedule: the paper gives one optimisation setting for its experiments
# (SGD, momentum 0.9, wd 1e-4, base lr 0.2, x0.5/x0.2/x0.1 at 50/70/90%) and
# no length for the Squeeze Stage; it is run here with the Expansion Stage's
# schedule (configs/_base_/schedules/expansion_multistep.py: 150k iterations,
# 500 warm-up iterations) on the Expansion Stage's batches (per GPU: 64
# classification images at 224, 2 detection images at 1333x800).
_base_ = './expansion_r50.py'

model = dict(
    _delete_=True,
    type='MultiTaskDistiller',
    teacher={{_base_.model}},
    # tools/train.py's default work_dir for expansion_r50.py, last iteration.
    teacher_checkpoint='work_dirs/expansion_r50/iter_150000.pth',
    # The squeezed model has the size of one sub-backbone (Sec. 3.3): the
    # student is the Expansion streams' ResNet-50 (V1b), trained from scratch.
    student={{_base_.model.backbone.backbone}},
    guidance=dict(type='GuidanceLayer', norm_cfg=dict(type='BN')),
    # The task output features (the paper's hints). e.g. hint_levels=(0, 1,
    # 2, 3), level_weights=(1, 1, 1, 1) hints all four levels instead.
    hint_levels=(-1, ),
    level_weights=None,
    # Eq. (3): each image, whichever task's data it comes from, is hinted by
    # every task's F^t ('own': task t's images by F^t only).
    hint_images='all')

# No reconciliation switch: the teacher is the model after tau.
custom_hooks = [dict(type='RandomStateHook')]
# The expansion's per-task lr multipliers concern its heads and streams;
# the student is one backbone shared by all tasks.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=1e-4))
# The Squeeze model has no heads: nothing to validate or test. Evaluate the
# student after exporting it (downstream / linear probe).
train_cfg = dict(val_interval={{_base_.max_iters}})
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
