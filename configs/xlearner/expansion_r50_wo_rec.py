# "X-Learner w/o Rec." (paper Tab. 5, Fig. 4): the Expansion Stage of
# configs/xlearner/expansion_r50.py without reconciliation layers. The
# sub-backbones still train separately for tau iterations and then jointly on
# the Eq. (1) loss (ReconciliationSwitchHook switches the loss only: there is
# no neck to switch on); squeeze it with squeeze_r50_wo_rec.py.
#
#   bash tools/dist_train.sh configs/xlearner/expansion_r50_wo_rec.py 8
_base_ = './expansion_r50.py'

model = dict(neck=None)
# The detection lr multiplier of the base recipe, without the neck's key.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '_delete_': True, 'backbone.streams.det.': dict(lr_mult=0.1),
    'task_models.det.': dict(lr_mult=0.1)}))
