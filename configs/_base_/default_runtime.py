# Runtime shared by xlearner_mm's configs: mmengine Runner defaults for
# iteration-based multi-task training.
default_scope = 'xlearner_mm'
# Imported by any OpenMMLab tool too (tools/train.py imports it anyway).
custom_imports = dict(imports=['xlearner_mm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook, but a crash while saving leaves the
    # previous checkpoint and `last_checkpoint` intact (written atomically,
    # outdated checkpoints removed only after the new one is written).
    checkpoint=dict(
        type='AtomicCheckpointHook', by_epoch=False, interval=5000,
        max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # In default_hooks (merged by key) rather than custom_hooks (replaced as
    # a list by the configs that add hooks), so that every config keeps them:
    # train/val/test data vs model tasks, sources and classes, before the
    # first iteration ...
    data_model_check=dict(type='DataModelConsistencyHook'),
    # ... and the tasks and levels of a load_from / resume checkpoint.
    checkpoint_check=dict(type='CheckpointConsistencyHook'))
custom_hooks = [
    # Saves every rank's RNG states so that --resume continues exactly.
    dict(type='RandomStateHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo where CUDA is unavailable.
    dist_cfg=dict(backend='nccl'))

# TensorBoard shows each task's losses in a section of its own
# (`det/coco_a/loss_cls`); the log and scalars.json keep the logged names
# (`det.coco_a.loss_cls`).
vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='MultiTaskTensorboardVisBackend')
]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False, window_size=50)
log_level = 'INFO'
# The GPUs the per-GPU batch sizes are written for: the global batch, whose
# source mix SourceMixSampler composes, is num_gpus x batch_size; the
# rehearsal (tools/rehearse.py) projects epochs and GPU-hours on it.
num_gpus = 8
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
