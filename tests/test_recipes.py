"""The recipes of the paper's tables (configs/xlearner/) and their tiny
twins (configs/demo/).

Every config under configs/xlearner/ builds its model (on the ``meta``
device where it can: shapes without memory, about a second each instead of
up to a minute for three ResNet-152 streams; no data and no checkpoint is
read), and the model agrees with the config's data. Each recipe's twin trains on the
demo data for two iterations with a real Runner, is squeezed where the
recipe has a Squeeze Stage, and is exported.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from test_expansion_e2e import demo_cfg, log_text, train

from xlearner_mm.apis import export_backbone
from xlearner_mm.models.distillers import ExpansionTeacher, HintTeacher
from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout, read_checkpoint
from xlearner_mm.utils import register_all_modules

register_all_modules()

# The configs of one model (a recipe of several stages, e.g. X-Learner_r's
# xlearner_r_r50.py, names its stages' configs instead).
XLEARNER_CONFIGS = sorted(
    p for p in glob.glob('configs/xlearner/*.py')
    if 'model' in Config.fromfile(p))
BASE = dict(tasks=('cls', 'det'), streams=('cls', 'det'), layers=14,
            depth=50)
WITH_SEG = dict(tasks=('cls', 'det', 'seg'), streams=('cls', 'det', 'seg'),
                layers=8 + 20 + 20)
HARD_SHARING = dict(streams=('shared', ), layers=None)
# What the Expansion model of each recipe is made of (a Squeeze config is
# checked against its teacher, the recipe of the same name).
EXPECTED = {
    'expansion_r50': BASE,
    'expansion_r50_plusplus': BASE,
    'prune_r50': BASE,
    'hard_sharing_r50': dict(BASE, **HARD_SHARING),
    'expansion_r50_wo_rec': dict(BASE, layers=None),
    # 1 layer into the last cls level, 10 into det
    'expansion_r50_top_down': dict(BASE, layers=1 + 10),
    'expansion_r50_seg': dict(BASE, **WITH_SEG),
    'expansion_r152_seg': dict(BASE, **WITH_SEG, depth=152),
    'expansion_r50_cls_sources': BASE,
    'expansion_r50_cls_det_sources': BASE,
    'hard_sharing_r50_cls_sources': dict(BASE, **HARD_SHARING),
    'hard_sharing_r50_cls_det_sources': dict(BASE, **HARD_SHARING),
}


def build_without_files(cfg, monkeypatch):
    """The model of ``cfg`` on the meta device, reading no file: the Squeeze
    teacher's checkpoint and the X-Learner++ teachers' checkpoints (their
    loading is tested in test_distiller.py and test_zoo_mixing.py) are left
    out. X-Learner++ teachers are built on the CPU: mmpretrain's ResNet
    reads a tensor's value when it is built, which meta tensors have not."""
    monkeypatch.setattr(ExpansionTeacher, '_load', lambda self, *args: None)
    monkeypatch.setattr(HintTeacher, '_check_checkpoint',
                        staticmethod(lambda init_cfg, where: None))
    build_hint = HintTeacher.__init__

    def build_hint_on_cpu(self, *args, **kwargs):
        with torch.device('cpu'):
            build_hint(self, *args, **kwargs)

    monkeypatch.setattr(HintTeacher, '__init__', build_hint_on_cpu)
    for hint in (cfg.get('hint_teachers') or {}).values():
        hint.backbone.init_cfg = None
    with torch.device('meta'):
        return MODELS.build(cfg)


@pytest.mark.parametrize('path', XLEARNER_CONFIGS,
                         ids=[osp.basename(p) for p in XLEARNER_CONFIGS])
def test_every_recipe_builds(path, monkeypatch):
    cfg = Config.fromfile(path)
    if 'teacher' in cfg.model and not cfg.model.teacher_checkpoint:
        # Set on the command line (X-Learner_r's recipe sets it); not read.
        cfg.model.teacher_checkpoint = 'unread.pth'
    model = build_without_files(cfg.model, monkeypatch)
    name = osp.splitext(osp.basename(path))[0]
    squeeze = 'teacher' in cfg.model
    expansion = model.teacher if squeeze else model
    layout = expansion.layout
    train_tasks = {t: list(loader.dataset.sources)
                   for t, loader in cfg.train_dataloader.items()}
    assert list(train_tasks) == list(layout.tasks)
    if not squeeze:  # a source per head (the teacher builds no heads)
        assert train_tasks == {t: list(s) for t, s in layout.sources.items()}
        assert set(cfg.val_dataloader) == set(cfg.val_evaluator)
        assert set(cfg.val_dataloader) == {
            s for sources in train_tasks.values() for s in sources}
    expected = EXPECTED.get(name.replace('squeeze', 'expansion'))
    if expected is None:  # a recipe this test does not know: built is all
        return
    assert layout.tasks == expected['tasks']
    assert tuple(expansion.backbone.streams) == expected['streams']
    assert layout.streams == expected['streams']
    for stream in expansion.backbone.streams.values():
        assert stream.depth == expected['depth']
    if expected['layers'] is None:
        assert expansion.neck is None
    else:
        assert expansion.neck.num_layers == expected['layers']
    if squeeze:
        assert model.student.depth == expected['depth']


# ------------------------------------------------ the twins on demo data


def run(config, work_dir, max_iters=2, tau=None, teacher_checkpoint=None):
    """``config`` trained in ``work_dir``; returns (runner, recorder, path of
    the last checkpoint)."""
    cfg = demo_cfg(work_dir, max_iters=max_iters, tau=tau,
                   checkpoint_interval=max_iters, config=config)
    if teacher_checkpoint is not None:
        cfg.model.teacher_checkpoint = teacher_checkpoint
    runner, recorder = train(cfg)
    assert sorted(recorder.log_vars) == list(range(1, max_iters + 1))
    return runner, recorder, str(work_dir / f'iter_{max_iters}.pth')


def eq1(log_vars, sources=dict(cls=2, det=2, seg=1)) -> float:
    """Paper Eq. (1) from the logged task losses of the demo's tasks."""
    return sum(n * log_vars[f'{t}.task_loss']
               for t, n in sources.items()) / sum(sources.values())


@pytest.mark.slow
def test_hard_sharing_trains_every_task_into_one_stream(demo_data, tmp_path):
    runner, rec, checkpoint = run('configs/demo/hard_sharing_demo.py',
                                  tmp_path)
    model = runner.model
    assert list(model.backbone.streams) == ['shared'] and model.neck is None
    # No tau phases: the Eq. (1) average from the first iteration.
    for i in (1, 2):
        assert rec.reconcile[i] is True
        assert rec.log_vars[i]['loss'] == pytest.approx(eq1(rec.log_vars[i]))

    # The shared backbone is the export, with or without a task.
    state = read_checkpoint(checkpoint)['state_dict']
    assert not [k for k in state if k.startswith('neck.')]
    stream = TaskLayout.strip(state, 'backbone.streams.shared.')
    assert stream and len(stream) == len(
        [k for k in state if k.startswith('backbone.')])
    for task in (None, 'det'):
        exported = export_backbone(checkpoint, task=task)
        assert exported['meta']['tasks'] == ['cls', 'det', 'seg']
        assert exported['state_dict'].keys() == stream.keys()
        for key, value in stream.items():
            assert torch.equal(exported['state_dict'][key], value), key
    # ... and so is ZooPretrained's reading of the checkpoint.
    backbone = MODELS.build(dict(
        model.layout.stream_config('cls'),
        init_cfg=dict(type='ZooPretrained', checkpoint=checkpoint)))
    backbone.init_weights()
    assert torch.equal(backbone.conv1.weight, stream['conv1.weight'])


def check_wo_rec(runner, rec, state) -> None:
    """Algorithm 1 without reconciliation: each stream on its own task loss
    before tau (their sum), the Eq. (1) average after."""
    assert runner.model.neck is None
    assert not [k for k in state if k.startswith('neck.')]
    first, second = rec.log_vars[1], rec.log_vars[2]
    assert first['loss'] == pytest.approx(
        sum(first[f'{t}.task_loss'] for t in ('cls', 'det', 'seg')))
    assert second['loss'] == pytest.approx(eq1(second))
    assert 'no reconciliation neck (model.neck=None)' in log_text(runner)


def check_top_down(runner, rec, state) -> None:
    assert runner.model.neck.direction == 'top_down'
    # Into det level 0 from cls level 3: three up-sampling steps, a bridge.
    assert 'neck.reconcilers.det.cls.3_0.gamma_c.2.1.conv.weight' in state
    assert not [k for k in state if 'gamma_a' in k]


def check_r152(runner, rec, state) -> None:
    assert all(s.depth == 152 for s in runner.model.backbone.streams.values())


@pytest.mark.slow
@pytest.mark.parametrize('recipe,check', [('wo_rec', check_wo_rec),
                                          ('top_down', check_top_down),
                                          ('r152', check_r152)])
def test_twin_trains_across_tau_squeezes_and_exports(recipe, check,
                                                     demo_data, tmp_path):
    runner, rec, checkpoint = run(f'configs/demo/expansion_{recipe}_demo.py',
                                  tmp_path / 'expansion', tau=1)
    assert [rec.reconcile[i] for i in (1, 2)] == [False, True]
    check(runner, rec, read_checkpoint(checkpoint)['state_dict'])

    squeeze = f'configs/demo/squeeze_{recipe}_demo.py'
    _, rec, squeezed = run(squeeze, tmp_path / 'squeeze',
                           teacher_checkpoint=checkpoint)
    assert {'cls.hint_loss', 'det.hint_loss', 'seg.hint_loss'} <= set(
        rec.log_vars[2])
    exported = export_backbone(squeezed)
    assert 'conv1.weight' in exported['state_dict']
    assert exported['meta']['resnet']['depth'] == Config.fromfile(
        squeeze).model.student.depth


@pytest.mark.slow
def test_extended_sources_train_squeeze_and_export(demo_data, tmp_path):
    runner, rec, checkpoint = run('configs/demo/expansion_extended_demo.py',
                                  tmp_path / 'expansion', tau=1)
    sources = dict(cls=('folder_cls', 'annfile_cls', 'extra_cls'),
                   det=('coco_a', 'coco_b', 'extra_det'), seg=('ade', ))
    assert runner.model.layout.sources == sources
    assert {'cls.extra_cls.loss', 'det.extra_det.loss_cls'} <= set(
        rec.log_vars[1])
    # The Squeeze Stage is the base recipe's; the teacher's layout, read
    # from its checkpoint, carries the sources into the export.
    _, _, squeezed = run('configs/demo/squeeze_demo.py', tmp_path / 'squeeze',
                         teacher_checkpoint=checkpoint)
    meta = export_backbone(squeezed)['meta']
    assert meta['sources'] == {t: list(s) for t, s in sources.items()}
