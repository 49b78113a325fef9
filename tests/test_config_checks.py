"""Configurations and inputs that used to train wrong without a word (issue
9): each is reproduced here and must fail before training with an error
naming the keys, file, source or task involved, or behave as documented.

- the sampler's batch size, a second copy of the loader's;
- tau >= max_iters;
- per-task lr multipliers matched by substring;
- segmentation labels above num_classes;
- COCO annotations the parser drops;
- truncated checkpoints (load_from, --resume, auto-resume, export, prune,
  teacher);
- an export announced as fitting configs it does not fit.
"""
import copy
import json
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from _tools import isolate_run
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

import xlearner_mm  # noqa: F401  (checkpoint allow-list for resuming)
from xlearner_mm.apis import (export_backbone, prune_checkpoint,
                              stock_configs_fitted)
from xlearner_mm.datasets import MultiSourceDataset
from xlearner_mm.engine import check_custom_keys
from xlearner_mm.models.pruning import MagnitudePruner
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules
from xlearner_mm.utils.checkpoint_file import CheckpointFileError

from test_distiller import save_teacher, teacher_cfg
from test_reliability import toy_cfg, train_toy

register_all_modules()

DEMO_CFG = 'configs/demo/expansion_demo.py'


def demo_runner(tmp_path, **cfg_options) -> Runner:
    """The demo Expansion config without workers or validation, with
    ``cfg_options`` merged as ``--cfg-options`` would."""
    cfg = Config.fromfile(DEMO_CFG)
    isolate_run(cfg, tmp_path, 'checks')
    for loader in cfg.train_dataloader.values():
        loader.update(num_workers=0, persistent_workers=False)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.merge_from_dict(cfg_options)
    return Runner.from_cfg(cfg)


# ------------------------------------------------------- sampler batch size


def test_loader_batch_size_drives_the_sampler(demo_data, tmp_path):
    """`train_dataloader.cls.batch_size=4` alone: the sampler composes
    batches of 4 (2 per source), not of the 8 the config once repeated."""
    runner = demo_runner(tmp_path, **{'train_dataloader.cls.batch_size': 4})
    loader = runner.train_loop.dataloaders['cls']
    assert loader.sampler.batch_size == 4
    for batch in list(zip(range(3), loader)):
        sources = sorted(s.source for s in batch[1]['data_samples'])
        assert sources == ['annfile_cls'] * 2 + ['folder_cls'] * 2


def test_sampler_batch_size_other_than_the_loaders_is_refused(
        demo_data, tmp_path):
    runner = demo_runner(tmp_path, **{
        'train_dataloader.cls.batch_size': 4,
        'train_dataloader.cls.sampler.batch_size': 8
    })
    with pytest.raises(ValueError) as error:
        runner.train_loop
    assert ('train_dataloader.cls.batch_size=4 and '
            'train_dataloader.cls.sampler.batch_size=8 differ') in str(
                error.value)


# --------------------------------------------------------------------- tau


def test_tau_not_below_max_iters_is_refused(demo_data, tmp_path):
    runner = demo_runner(tmp_path, **{
        'train_cfg.max_iters': 3,
        'custom_hooks.1.tau': 100
    })
    with pytest.raises(ValueError) as error:
        runner.train()
    assert ('ReconciliationSwitchHook tau=100 (custom_hooks) is not below '
            'train_cfg.max_iters=3') in str(error.value)
    assert runner.iter == 0


# ------------------------------------------------------- lr multiplier keys


@pytest.fixture(scope='module')
def det_det2():
    """An XLearner with tasks `det` and `det2`, as README's "To add a task"
    makes one next to `det`."""
    return MODELS.build(teacher_cfg(('cls', 'det', 'det2')))


def lr_of(optim_wrapper, model) -> dict:
    """``{parameter name: lr}``."""
    lrs = {id(p): group['lr'] for group in optim_wrapper.param_groups
           for p in group['params']}
    return {name: lrs[id(p)] for name, p in model.named_parameters()}


def test_task_lr_keys_must_not_reach_other_tasks(det_det2):
    with pytest.raises(ValueError) as error:
        check_custom_keys(det_det2,
                          {'backbone.streams.det': dict(lr_mult=0.1)})
    message = str(error.value)
    assert "custom_keys['backbone.streams.det'] is meant for task 'det'" in \
        message
    assert "task(s) ['det2']" in message
    assert "'backbone.streams.det.'" in message  # the safe form
    with pytest.raises(ValueError, match=r"task\(s\) \['det2'\]"):
        check_custom_keys(det_det2, {'task_models.det': dict(lr_mult=0.1)})


def test_whole_task_keys_set_their_task_only(det_det2):
    keys = {
        'backbone.streams.det.': dict(lr_mult=0.1),
        'neck.reconcilers.det.': dict(lr_mult=0.1),
        'task_models.det.': dict(lr_mult=0.1),
    }
    optim_wrapper = build_optim_wrapper(
        det_det2,
        dict(constructor='TaskOptimWrapperConstructor',
             optimizer=dict(type='SGD', lr=1.0),
             paramwise_cfg=dict(custom_keys=keys)))
    task_names = det_det2.task_parameter_names()
    lrs = lr_of(optim_wrapper, det_det2)
    assert {lrs[name] for name in task_names['det']} == {0.1}
    assert {lrs[name] for name in task_names['det2']} == {1.0}
    assert {lrs[name] for name in task_names['cls']} == {1.0}
    # Every stream, reconciliation layer and head parameter has a task.
    assert sum(map(len, task_names.values())) == len(lrs)


def test_constructor_refuses_substring_keys(det_det2):
    with pytest.raises(ValueError, match=r"task\(s\) \['det2'\]"):
        build_optim_wrapper(
            det_det2,
            dict(constructor='TaskOptimWrapperConstructor',
                 optimizer=dict(type='SGD', lr=1.0),
                 paramwise_cfg=dict(custom_keys={
                     'neck.reconcilers.det': dict(lr_mult=0.1)})))


def test_cross_task_keys_are_logged(det_det2, monkeypatch):
    """A key naming no task: all tasks is fine, some of them is logged."""
    logged = []
    monkeypatch.setattr(
        'xlearner_mm.engine.optim_wrappers.task_optim_wrapper_constructor.'
        'print_log', lambda message, **kwargs: logged.append(message))
    check_custom_keys(det_det2, {'bn': dict(decay_mult=0)})
    assert logged == []
    check_custom_keys(det_det2, {'streams.d': dict(lr_mult=0.5)})
    assert logged == [
        "optim_wrapper.paramwise_cfg.custom_keys['streams.d'] sets the "
        "parameters of tasks ['det', 'det2'] but not of ['cls']."
    ]


def test_demo_config_keys_are_whole_task_names(demo_data, tmp_path):
    runner = demo_runner(tmp_path)
    keys = runner.cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys and all(key.endswith('.det.') for key in keys)
    assert runner.cfg.optim_wrapper.constructor == \
        'TaskOptimWrapperConstructor'


# ------------------------------------------------ segmentation label values


def test_segmentation_label_above_num_classes_names_file_source_task(
        demo_data, tmp_path):
    root = tmp_path / 'ade'
    shutil.copytree(osp.join(demo_data, 'ade'), root)
    bad = str(root / 'annotations' / 'training' / '0000.png')
    seg = cv2.imread(bad, cv2.IMREAD_UNCHANGED)
    seg[:] = 200
    cv2.imwrite(bad, seg)
    cfg = Config.fromfile(DEMO_CFG).train_dataloader.seg.dataset
    dataset = MultiSourceDataset(
        task='seg', pipeline=cfg.pipeline,
        sources=dict(ade=dict(cfg.sources.ade, data_root=str(root))))
    index = next(i for i in range(len(dataset))
                 if dataset.datasets[0].get_data_info(i)['seg_map_path'] ==
                 bad)
    with pytest.raises(RuntimeError) as error:
        dataset[index]
    message = str(error.value)
    assert f"seg_map_path='{bad}'" in message
    assert "source 'ade' of task 'seg'" in message
    # ADE20K's reduce_zero_label turns 200 into 199.
    assert ('gt_sem_seg has values [199], which are neither class indices '
            "0..3 of the source's 4 classes nor its ignore index 255") in \
        message
    dataset[(index + 1) % len(dataset)]  # the others load


# ---------------------------------------------------- dropped annotations


def coco_source(demo_data, tmp_path, edit) -> dict:
    """The demo's coco_a training source on a copy of its annotation file
    changed by ``edit(annotations)``."""
    root = tmp_path / 'coco_a'
    shutil.copytree(osp.join(demo_data, 'coco_a'), root)
    ann_file = root / 'annotations' / 'instances_train.json'
    coco = json.loads(ann_file.read_text())
    edit(coco['annotations'])
    ann_file.write_text(json.dumps(coco))
    cfg = Config.fromfile(DEMO_CFG).train_dataloader.det.dataset
    return dict(pipeline=cfg.pipeline,
                sources=dict(coco_a=dict(cfg.sources.coco_a,
                                         data_root=str(root))))


def test_dropped_annotations_are_counted_and_logged(demo_data, tmp_path,
                                                    monkeypatch):
    total = {}

    def spoil(annotations):
        total['n'] = len(annotations)
        annotations[0]['category_id'] = 99
        annotations[1]['category_id'] = 99
        annotations[2]['bbox'][2] = -5.0  # negative width

    logged = []
    monkeypatch.setattr('xlearner_mm.datasets.multi_source_dataset.print_log',
                        lambda message, **kwargs: logged.append(message))
    dataset = MultiSourceDataset(task='det',
                                 **coco_source(demo_data, tmp_path, spoil))
    assert dataset.annotation_counts == dict(coco_a=dict(
        total=total['n'], valid=total['n'] - 3, dropped=3,
        unknown_category=2))
    message, = logged
    assert message.startswith("Source 'coco_a' of task 'det' (")
    assert 'instances_train.json' in message
    assert (f"{total['n'] - 3} valid annotations of {total['n']}; dropped 3: "
            "2 with a category_id that is not among the dataset's "
            'categories, 1 with an empty, degenerate, out-of-image or '
            'ignored box') in message
    # The parser is the dataset's own again.
    assert 'parse_data_info' not in vars(dataset.datasets[0])


def test_source_without_a_valid_annotation_fails(demo_data, tmp_path):

    def unknown_categories(annotations):
        for annotation in annotations:
            annotation['category_id'] = 99

    with pytest.raises(ValueError) as error:
        MultiSourceDataset(
            task='det',
            **coco_source(demo_data, tmp_path, unknown_categories))
    message = str(error.value)
    assert "Source 'coco_a' of task 'det' (" in message
    assert 'none of its' in message and 'annotations is valid' in message
    assert "category_id that is not among the dataset's categories" in \
        message


# ----------------------------------------------------- truncated checkpoints


def checked_toy_cfg(work_dir, **kwargs) -> dict:
    """The toy run of test_reliability with the default runtime's
    checkpoint check."""
    cfg = toy_cfg(work_dir, **kwargs)
    runtime = Config.fromfile('configs/_base_/default_runtime.py')
    cfg['default_hooks']['checkpoint_check'] = \
        runtime.default_hooks.checkpoint_check
    return cfg


def truncate(path, out) -> str:
    data = open(path, 'rb').read()
    with open(out, 'wb') as f:
        f.write(data[:len(data) // 2])
    return str(out)


@pytest.fixture
def toy_run(tmp_path, monkeypatch):
    """A toy training run checkpointed at iterations 2, 4 and 6."""
    monkeypatch.setattr('mmengine.runner.loops.time.sleep', lambda _: None)
    train_toy(tmp_path / 'run', max_iters=6)
    return tmp_path / 'run'


def test_truncated_load_from_and_resume_are_named(toy_run, tmp_path):
    bad = truncate(toy_run / 'iter_4.pth', tmp_path / 'cut.pth')
    for extra, key in ((dict(load_from=bad), 'load_from'),
                       (dict(load_from=bad, resume=True), '--resume CKPT')):
        runner = Runner.from_cfg(
            Config(dict(checked_toy_cfg(tmp_path / key[:6]), **extra)))
        with pytest.raises(CheckpointFileError) as error:
            runner.train()
        message = str(error.value)
        assert message.startswith(key)
        assert f"checkpoint '{bad}' is truncated or corrupt" in message


def test_auto_resume_falls_back_to_the_newest_intact_checkpoint(
        toy_run, tmp_path, monkeypatch):
    latest = toy_run / 'iter_6.pth'
    truncate(latest, tmp_path / 'cut.pth')
    shutil.copy(tmp_path / 'cut.pth', latest)
    logged = []
    monkeypatch.setattr(
        'xlearner_mm.engine.hooks.checkpoint_consistency_hook.print_log',
        lambda message, **kwargs: logged.append(message))
    runner = Runner.from_cfg(Config(dict(
        checked_toy_cfg(toy_run, max_iters=5), resume=True)))
    runner.train()
    assert runner.iter == 5
    warning, = logged
    assert f"the latest checkpoint '{latest}' is truncated or corrupt" in \
        warning
    assert f"resuming from '{toy_run / 'iter_4.pth'}'" in warning
    # Nothing lost: the damaged file is still there.
    assert osp.getsize(latest) == osp.getsize(tmp_path / 'cut.pth')
    reference = train_toy(tmp_path / 'reference', max_iters=5)
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(runner.model.state_dict()[key], value)


def test_truncated_export_prune_and_teacher_checkpoints_are_named(tmp_path):
    path = save_teacher(teacher_cfg(('a', 'b')), tmp_path / 'expansion.pth')
    bad = truncate(path, tmp_path / 'cut.pth')
    with pytest.raises(CheckpointFileError,
                       match=f"^checkpoint: checkpoint '{bad}' is truncated"):
        export_backbone(bad, task='a')
    with pytest.raises(CheckpointFileError,
                       match=f"^checkpoint: checkpoint '{bad}' is truncated"):
        prune_checkpoint(DEMO_CFG, bad, str(tmp_path / 'pruned.pth'),
                         MagnitudePruner(sparsity=0.5))
    with pytest.raises(CheckpointFileError,
                       match=f"^model.teacher_checkpoint: checkpoint '{bad}' "
                       'is truncated'):
        MODELS.build(dict(
            type='MultiTaskDistiller', teacher=teacher_cfg(('a', 'b')),
            teacher_checkpoint=bad,
            student=copy.deepcopy(teacher_cfg()['backbone']['backbone'])))


# --------------------------------------------------- what an export fits


def plain_weights(cfg: dict) -> dict:
    return MODELS.build(cfg).state_dict()


def test_export_fits_judged_by_depth_widths_and_stem(tmp_path):
    path = save_teacher(teacher_cfg(('a', 'b')), tmp_path / 'expansion.pth')
    meta = export_backbone(path, task='a')['meta']
    assert meta['resnet'] == dict(depth=18, block='BasicBlock',
                                  stage_blocks=[2, 2, 2, 2], base_channels=8,
                                  stem_channels=8, deep_stem=False)
    fits = stock_configs_fitted(meta)
    assert fits.startswith('no stock config: a BasicBlock ResNet')
    assert 'depth=18, base_channels=8, stem_channels=8' in fits

    from xlearner_mm.apis import resnet_layout
    r50 = resnet_layout(plain_weights(dict(type='mmdet.ResNet', depth=50)))
    assert stock_configs_fitted(dict(resnet=r50)).startswith(
        'ResNet-50, V1b stem (conv1): mmdet ResNet-50 configs')
    r50c = resnet_layout(plain_weights(dict(type='mmseg.ResNetV1c', depth=50)))
    assert stock_configs_fitted(dict(resnet=r50c)) == (
        'ResNet-50, V1c deep stem (stem.*): mmseg "r50-d8" (ResNetV1c) '
        'configs')
    r101 = resnet_layout(plain_weights(dict(type='mmdet.ResNet', depth=101)))
    assert r101['depth'] == 101
    assert stock_configs_fitted(dict(resnet=None)).startswith(
        'no stock ResNet config')
