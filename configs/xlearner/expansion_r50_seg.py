# "X-Learner w/ seg" (paper Sec. 4.1, Tab. 2): the base setting of
# configs/xlearner/expansion_r50.py plus a semantic segmentation task on
# ADE20K and COCO-Stuff 164k (configs/_base_/tasks/seg_ade20k_coco_stuff.py),
# a third ResNet-50 stream reconciled with the other two. Its UPerNet heads
# read all four levels, so 48 reconciliation layers: 8 into cls, 20 into det,
# 20 into seg. Squeeze it with squeeze_r50_seg.py.
#
#   bash tools/dist_train.sh configs/xlearner/expansion_r50_seg.py 8
_base_ = [
    './expansion_r50.py',
    '../_base_/tasks/seg_ade20k_coco_stuff.py',
]

model = dict(task_models=dict(seg={{_base_.seg_task_model}}))
train_dataloader = dict(seg={{_base_.seg_train_loader}})
# The segmentation stream, its reconciliation inputs and heads train at
# mmseg's usual 0.01 (base lr 0.2 x 0.05), as detection at Faster R-CNN's.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'backbone.streams.seg.': dict(lr_mult=0.05),
    'neck.reconcilers.seg.': dict(lr_mult=0.05),
    'task_models.seg.': dict(lr_mult=0.05),
}))
val_dataloader = dict(
    ade20k={{_base_.ade20k_val_loader}},
    coco_stuff={{_base_.coco_stuff_val_loader}})
val_evaluator = dict(
    ade20k={{_base_.ade20k_evaluator}},
    coco_stuff={{_base_.coco_stuff_evaluator}})
test_dataloader = val_dataloader
test_evaluator = val_evaluator
