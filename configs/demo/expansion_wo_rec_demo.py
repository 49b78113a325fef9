# "X-Learner w/o Rec." (configs/xlearner/expansion_r50_wo_rec.py) at toy
# size: configs/demo/expansion_demo.py without reconciliation layers, still
# separate before tau and joint (Eq. 1) after it. Squeeze it with
# configs/demo/squeeze_wo_rec_demo.py.
#
#   python tools/train.py configs/demo/expansion_wo_rec_demo.py \
#       --work-dir work_dirs/demo/expansion_wo_rec
_base_ = './expansion_demo.py'

model = dict(neck=None)
# The demo's detection lr multiplier, without the neck's key.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '_delete_': True, 'backbone.streams.det.': dict(lr_mult=0.5),
    'task_models.det.': dict(lr_mult=0.5)}))
