"""The rehearsal (tools/rehearse.py): every training config under
configs/xlearner/ runs at its real batch sizes, source sizes and class
counts on synthetic data, for 2 iterations at a tenth of its image sizes,
stopped after the first and resumed; the base recipe and a Table 3 recipe
with 2 gloo processes; the base recipe's export through the transfer
suite's fine-tunes.

Most recipes are rehearsed on the current torch only; ``BOTH_STACKS`` also
on torch 2.1 (CI runs both), which keeps CI inside its time.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from _tools import REPO_ROOT
from mmengine.config import Config

from xlearner_mm.apis import Rehearsal, rehearsal_config
from xlearner_mm.apis.recipe import recipe_stages
from xlearner_mm.apis.rehearsal_config import (image_shape, scale_sizes,
                                               strip_loading)
from xlearner_mm.datasets import MultiSourceDataset, SyntheticSource
from xlearner_mm.utils import register_all_modules

register_all_modules()

ITERS, SCALE = 2, 0.1
# recipe (under configs/xlearner/) -> how it is rehearsed. Checkpoint saves
# and resumes (the slow part) are rehearsed in the first three; recipes with
# the same `share` share their work dir, so X-Learner_p prunes the base
# recipe's rehearsed Expansion Stage instead of rehearsing it again.
REHEARSED = {
    'recipes/xlearner_r50.py': dict(world_size=2, downstream=True,
                                    share='base'),
    'recipes/xlearner_p_r50.py': dict(share='base'),
    'recipes/xlearner_cls_sources_r50.py': dict(world_size=2),
    'recipes/xlearner_plusplus_r50.py': dict(resume=False),
    'recipes/xlearner_wo_rec_r50.py': dict(resume=False),
    'recipes/xlearner_t_r50.py': dict(resume=False),
    'recipes/xlearner_seg_r50.py': dict(resume=False),
    'recipes/xlearner_cls_det_sources_r50.py': dict(resume=False),
    'recipes/xlearner_r152_seg.py': dict(resume=False),
    'xlearner_r_r50.py': dict(resume=False),
    'hard_sharing_r50.py': dict(resume=False),
    'hard_sharing_r50_cls_sources.py': dict(resume=False),
    'hard_sharing_r50_cls_det_sources.py': dict(resume=False),
}
BOTH_STACKS = ('recipes/xlearner_r50.py', 'hard_sharing_r50_cls_det_sources.py')


def _stage_configs(recipe: str):
    path = osp.join('configs/xlearner', recipe)
    if 'stages' in Config.fromfile(path):
        return [s['config'] for s in recipe_stages(path)[0]]
    return [path]


def test_every_config_under_configs_xlearner_is_rehearsed():
    configs = {
        p for p in glob.glob('configs/xlearner/**/*.py', recursive=True)
    }
    covered = {osp.join('configs/xlearner', r) for r in REHEARSED}
    covered |= {c for r in REHEARSED for c in _stage_configs(r)}
    assert configs - covered == set()


# ---- the pieces ----
def test_scaled_pipeline_drops_loading_and_scales_sizes():
    cfg = Config.fromfile('configs/xlearner/expansion_r50_seg.py')
    steps = strip_loading(cfg.seg_train_pipeline, 0.25)
    types = [s['type'] for s in steps]
    assert not any(t.split('.')[-1].startswith('Load') for t in types)
    assert steps[0]['scale'] == (512, 128)
    assert steps[1]['crop_size'] == (128, 128)
    assert steps[0]['ratio_range'] == (0.5, 2.0)  # not a size
    assert image_shape(steps) == (128, 256)
    assert scale_sizes(224, 0.01) == 32 and scale_sizes([(1333, 800)],
                                                        0.5) == [(666, 400)]


def test_sources_get_their_declared_sizes_and_classes(tmp_path):
    cfg = Config.fromfile('configs/xlearner/expansion_r50_cls_det_sources.py')
    rcfg, plan = rehearsal_config(cfg, ITERS, SCALE, str(tmp_path))
    cls = {s['name']: s for s in plan['sources']['cls']}
    det = {s['name']: s for s in plan['sources']['det']}
    assert set(cls) == {'imagenet', 'inat2021', 'places365', 'compcars',
                        'tsinghua_dogs'}
    assert set(det) == {'coco', 'objects365', 'wider_face'}
    for task, found in (('cls', cls), ('det', det)):
        expected = cfg.train_dataloader[task].dataset.expected_sizes
        assert {n: s['size'] for n, s in found.items()} == dict(expected)
    assert cls['inat2021']['num_classes'] == cfg.inat2021_num_classes
    assert det['objects365']['num_classes'] == cfg.objects365_num_classes
    assert cls['imagenet']['img_shape'] == (32, 32)  # 224 x 0.1, at least 32
    assert det['coco']['img_shape'] == (80, 133)
    assert plan['max_iters'] == cfg.train_cfg.max_iters
    assert rcfg.train_cfg.max_iters == ITERS
    assert rcfg.val_dataloader is None
    tau = [h for h in rcfg.custom_hooks
           if h['type'] == 'ReconciliationSwitchHook']
    assert tau[0]['tau'] == ITERS // 2 and plan['tau'] == 15000
    # the built dataset is a real MultiSourceDataset of the real sizes
    dataset = MultiSourceDataset(**{
        k: v for k, v in rcfg.train_dataloader.det.dataset.items()
        if k != 'type'
    })
    assert len(dataset) == sum(dict(expected).values())
    sample = dataset[len(dataset) - 1]
    assert sample['data_samples'].source == 'wider_face'
    assert sample['inputs'].shape[-2:] == (80, 133)


def test_a_source_without_a_size_is_named(tmp_path):
    cfg = Config.fromfile('configs/xlearner/expansion_r50.py')
    del cfg.train_dataloader.det.dataset.expected_sizes['coco']
    cfg.pop('coco_train_size')
    with pytest.raises(KeyError, match=r'coco.*expected_sizes\.coco'):
        rehearsal_config(cfg, ITERS, SCALE, str(tmp_path))


@pytest.mark.parametrize('kind', ['cls', 'det', 'seg'])
def test_synthetic_samples_are_stable_and_in_range(kind):
    source = SyntheticSource(kind=kind, size=10**7, num_classes=171,
                             img_shape=(40, 60), name='s')
    assert len(source) == 10**7
    a, b = source.get_data_info(123), source.get_data_info(123)
    assert np.array_equal(a['img'], b['img'])
    assert a['img'].shape == (40, 60, 3) and a['img'].dtype == np.uint8
    if kind == 'cls':
        assert 0 <= a['gt_label'] < 171
    elif kind == 'det':
        boxes = a['gt_bboxes'].tensor
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert boxes[:, 2].max() <= 60 and boxes[:, 3].max() <= 40
        assert a['gt_bboxes_labels'].max() < 171
    else:
        seg = a['gt_seg_map']
        assert set(np.unique(seg)) - set(range(171)) == {255}
    with pytest.raises(IndexError):
        source.get_data_info(10**7)


# ---- rehearsals ----
def _rehearse(recipe: str, work_dir: str, world_size: int = 1,
              downstream: bool = False, resume: bool = True) -> dict:
    config = osp.join('configs/xlearner', recipe)
    if world_size == 1:
        return Rehearsal(config, work_dir, iters=ITERS, img_scale=SCALE,
                         resume=resume, num_workers=0,
                         suite='configs/transfer/table2_r50.py'
                         if downstream else None).run()
    command = [
        sys.executable, 'tools/rehearse.py', config, '--work-dir', work_dir,
        '--iters', str(ITERS), '--img-scale', str(SCALE), '--workers', '0',
        '--world-size', str(world_size)
    ] + ([] if resume else ['--no-resume']) + (
        [] if downstream else ['--no-downstream'])
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, timeout=840,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'recipe: ' in proc.stdout
    with open(osp.join(work_dir, 'rehearsal.json')) as f:
        return json.load(f)


def _check(recipe: str, report: dict, work_dir: str, world_size: int = 1,
           downstream: bool = False, resume: bool = True) -> None:
    configs = _stage_configs(recipe)
    rows = report['stages']
    assert len(rows) == len(configs) + (2 if downstream else 0)
    assert report['world_size'] == world_size
    for row, config in zip(rows, configs):
        cfg = Config.fromfile(config)
        where = f'{recipe}: {row["stage"]}'
        assert row['max_iters'] == cfg.train_cfg.max_iters, where
        assert row['flops_per_iter_per_gpu'] > \
            row['ideal_flops_per_iter_per_gpu'] > 0, where
        assert row['params_total'] >= row['params_trained'] > 0, where
        assert row['checkpoint_bytes'] == os.path.getsize(
            row['checkpoint']), where
        for task, loader in cfg.train_dataloader.items():
            found = {s['source']: s for s in row['sources']
                     if s['task'] == task}
            assert set(found) == set(loader.dataset.sources), where
            assert abs(sum(s['share'] for s in found.values()) - 1) < 1e-9
            global_batch = loader.batch_size * cfg.get('num_gpus', 8)
            for s in found.values():
                assert s['images_per_global_batch'] >= 1, (where, s)
                assert s['epochs'] == pytest.approx(
                    cfg.train_cfg.max_iters * s['share'] * global_batch /
                    s['size'])
        stage_dir = osp.dirname(row['checkpoint'])
        ranks = [''] + [f'.rank{r}' for r in range(1, world_size)]
        for rank in ranks if resume else []:
            # every rank's second half resumed at iteration ITERS // 2
            with open(osp.join(stage_dir,
                               f'iteration_cost_resumed{rank}.json')) as f:
                resumed = json.load(f)
            assert resumed['timed_iters'] + (
                [resumed['counted_iter']]
                if resumed['counted_iter'] is not None else []) == list(
                    range(ITERS // 2, ITERS)), (where, rank)
        if world_size > 1:
            assert osp.isfile(
                osp.join(stage_dir, 'iteration_cost_first.rank1.json'))
    assert osp.isfile(report['export'])
    if downstream:
        assert [r['stage'] for r in rows[-2:]] == [
            'downstream_det', 'downstream_seg'
        ]


# Each rehearsal (or recipes sharing a work dir) is a unit of its own for
# `make test`'s xdist workers, which then share the rehearsals out.
REHEARSALS = [
    pytest.param(recipe, marks=[
        pytest.mark.slow,
        pytest.mark.xdist_group(REHEARSED[recipe].get('share', recipe))
    ] + ([] if recipe in BOTH_STACKS else [pytest.mark.current_torch]))
    for recipe in REHEARSED
]


def _remove_checkpoints(work_dir) -> None:
    """A rehearsal writes up to 4 GB of checkpoints (R152); pytest keeps
    the last three runs' temporary folders, so they go at once."""
    for path in glob.glob(osp.join(str(work_dir), '**', '*.pth'),
                          recursive=True):
        os.remove(path)


@pytest.fixture(scope='module')
def shared_work_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp('rehearsals')
    yield root
    _remove_checkpoints(root)


@pytest.mark.parametrize('recipe', REHEARSALS)
def test_rehearsal(recipe, tmp_path, shared_work_dirs):
    options = dict(REHEARSED[recipe])
    share = options.pop('share', None)
    work_dir = str(shared_work_dirs / share if share else tmp_path)
    try:
        report = _rehearse(recipe, work_dir, **options)
        _check(recipe, report, work_dir, **options)
    finally:
        if not share:
            _remove_checkpoints(work_dir)
