# Paper Sec. 4.1: SGD, momentum 0.9, weight decay 1e-4, base lr 0.2; the lr
# is decayed three times, by 0.5, 0.2 and 0.1, at 50%, 70% and 90% of the
# iterations (successive factors: 0.2 -> 0.1 -> 0.02 -> 0.002).
# Configs that inherit this set `max_iters` and re-state the milestones.
max_iters = 150000
optim_wrapper = dict(
    type='OptimWrapper',
    # mmengine's default constructor, after a check that no custom key meant
    # for one task (e.g. 'backbone.streams.det.') also sets another task's
    # parameters (mmengine matches the keys as substrings).
    constructor='TaskOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    # A short warm-up (not in the paper) keeps lr 0.2 from blowing up the
    # randomly initialised detection heads in the first iterations.
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=False, milestones=[75000], gamma=0.5),
    dict(type='MultiStepLR', by_epoch=False, milestones=[105000], gamma=0.2),
    dict(type='MultiStepLR', by_epoch=False, milestones=[135000], gamma=0.1),
]
train_cfg = dict(type='MultiTaskIterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
val_cfg = dict(type='MultiTaskValLoop')
test_cfg = dict(type='MultiTaskTestLoop')
