"""The pictures of a run (docs/pictures.md): the loss curves and iteration
times of ``tools/analyze_logs.py``, the reconciliation pictures of
``tools/vis_reconciliation.py``, the samples of ``tools/browse_dataset.py``
and the TensorBoard tags, on one 4-iteration run of the Expansion demo."""
import math
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from _tools import REPO_ROOT, load_tool
from mmengine.config import Config
from mmengine.runner import Runner
from tensorboard.backend.event_processing.event_accumulator import \
    EventAccumulator
from test_expansion_e2e import DEMO_CONFIG, demo_cfg

from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout
from xlearner_mm.visualization import (CURVES_SIZE, DPI, FEATMAP_TILE,
                                       HEATMAP_SIZE, contribution_grid,
                                       default_curve_keys, find_scalars,
                                       load_scalars,
                                       loss_groups,
                                       reconciliation_contributions,
                                       tensorboard_tag, train_time_stats)

MAX_ITERS = 4
DEMO_IMAGE = 'data/demo/coco_a/val/0000.jpg'
# The demo's tasks, their sources, and the side of the images their training
# pipelines give (configs/_base_/datasets/demo.py).
SOURCES = dict(cls=('folder_cls', 'annfile_cls'), det=('coco_a', 'coco_b'),
               seg=('ade', ))
IMAGE_SIDE = dict(cls=64, det=128, seg=64)


def png_size(path: str) -> tuple:
    """(width, height) of a non-empty image file."""
    assert osp.getsize(path) > 0, path
    height, width = mmcv.imread(path).shape[:2]
    return width, height


def pixels(size_inches: tuple) -> tuple:
    return tuple(int(side * DPI) for side in size_inches)


@pytest.fixture(scope='module', autouse=True)
def one_torch_thread():
    """One torch thread for this module: on a shared CPU, idle OpenMP
    threads spin (torch 2.1 took 4 to 12 s per demo iteration with two,
    0.2 s with one); restored for the other modules."""
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


@pytest.fixture(scope='module')
def demo_run(one_torch_thread, demo_data, tmp_path_factory):
    """The work dir of a 4-iteration run of the Expansion demo (tau=2), with
    a checkpoint at the end and the config's own vis backends (TensorBoard
    too; the tests' runs otherwise log to JSON only)."""
    work_dir = tmp_path_factory.mktemp('vis_demo')
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO_ROOT)
        cfg = demo_cfg(work_dir, max_iters=MAX_ITERS, tau=2,
                       checkpoint_interval=MAX_ITERS)
        cfg.visualizer.vis_backends = cfg.vis_backends
        Runner.from_cfg(cfg).train()
    return str(work_dir)


# ------------------------------------------------------------ analyze_logs

def test_loss_groups_by_task(demo_run):
    scalars = load_scalars(demo_run)
    groups = loss_groups(default_curve_keys(scalars))
    assert list(groups) == ['cls', 'det', 'seg', 'lr']
    assert set(groups['det']) == {
        'det.task_loss', 'det.loss_rpn_cls', 'det.loss_rpn_bbox',
        'det.coco_a.loss_cls', 'det.coco_a.loss_bbox', 'det.coco_b.loss_cls',
        'det.coco_b.loss_bbox'
    }
    assert set(groups['cls']) == {
        'cls.task_loss', 'cls.folder_cls.loss', 'cls.annfile_cls.loss'
    }
    assert set(groups['seg']) == {'seg.task_loss', 'seg.decode.ade.loss_ce'}
    steps, _ = scalars['det.task_loss']
    assert steps.tolist() == list(range(1, MAX_ITERS + 1))
    # Keys of no task stand alone.
    assert loss_groups(['loss', 'det.task_loss', 'lr']) == dict(
        loss=['loss'], det=['det.task_loss'], lr=['lr'])


def test_plot_curve(demo_run, tmp_path):
    analyze_logs = load_tool('analyze_logs')
    out = str(tmp_path / 'loss_curves.png')
    analyze_logs.main(['plot_curve', demo_run, '--out', out])
    assert png_size(out) == pixels(CURVES_SIZE) == (1200, 800)
    # Two runs (a work dir and a scalars.json), chosen keys.
    scalars_json = find_scalars(demo_run)
    out = str(tmp_path / 'chosen.png')
    analyze_logs.main([
        'plot_curve', demo_run, scalars_json, '--keys', 'det.task_loss',
        'loss', '--title', 'two runs', '--out', out
    ])
    assert png_size(out) == (1200, 800)
    with pytest.raises(KeyError, match='det.nothing'):
        analyze_logs.main(['plot_curve', demo_run, '--keys', 'det.nothing',
                           '--out', out])


def test_cal_train_time(demo_run, capsys):
    load_tool('analyze_logs').main(['cal_train_time', demo_run])
    printed = capsys.readouterr().out
    assert 'Analyze train time of' in printed
    assert 'average iter time' in printed
    scalars = load_scalars(demo_run)
    stats = train_time_stats(scalars)
    everything = train_time_stats(scalars, include_outliers=True)
    assert (stats['count'], everything['count']) == (MAX_ITERS - 1, MAX_ITERS)
    assert 0 < stats['fastest'] <= stats['average'] <= stats['slowest']
    assert stats['std'] >= 0 and 2 <= stats['slowest_iter'] <= MAX_ITERS


# ------------------------------------------------------ vis_reconciliation

def test_vis_reconciliation(demo_run, tmp_path):
    checkpoint = osp.join(demo_run, f'iter_{MAX_ITERS}.pth')
    out_dir = tmp_path / 'pictures'
    contributions = load_tool('vis_reconciliation').main([
        DEMO_CONFIG, checkpoint, '--img', DEMO_IMAGE, '--out-dir',
        str(out_dir), '--size', '64'
    ])
    # The demo's neck: cls and seg read their last level (3 + 1 links from
    # each of the 2 other tasks), det every level (1 + 2 + 3 + 4 from each).
    assert len(contributions) == 2 * (4 + 10 + 4) == 36
    assert all(math.isfinite(v) and v >= 0 for v in contributions.values())
    assert all(link.source_level <= link.target_level
               for link in contributions)  # bottom-up
    rows, columns, values = contribution_grid(contributions)
    assert np.count_nonzero(~np.isnan(values)) == len(contributions)
    assert len(rows) == 1 + 4 + 1 and len(columns) == 3 * 4
    assert png_size(str(out_dir / 'reconciliation_heatmap.png')) == pixels(
        HEATMAP_SIZE) == (1200, 600)
    for task in SOURCES:
        assert png_size(str(out_dir / f'featmaps_{task}.png')) == (
            4 * FEATMAP_TILE, 2 * FEATMAP_TILE)


def test_contributions_follow_the_direction():
    """X-Learner_t's layers read deeper levels: every link has j >= i."""
    model = MODELS.build(
        Config.fromfile('configs/demo/expansion_top_down_demo.py').model)
    torch.manual_seed(0)
    contributions = reconciliation_contributions(
        model, {task: torch.randn(1, 3, 64, 64) for task in SOURCES})
    assert set(contributions) == set(model.neck.links())
    assert all(link.source_level >= link.target_level
               for link in contributions)
    assert all(math.isfinite(v) and v >= 0 for v in contributions.values())
    assert model.training  # back in the mode it was in


# ------------------------------------------------------------ browse_dataset

@pytest.mark.parametrize('task', list(SOURCES))
def test_browse_dataset(demo_data, task, tmp_path):
    source = SOURCES[task][0]
    written = load_tool('browse_dataset').main([
        DEMO_CONFIG, '--task', task, '--source', source, '--output-dir',
        str(tmp_path), '--show-number', '3', '--not-show'
    ])
    assert len(written) == 3
    assert sorted(osp.basename(p) for p in tmp_path.iterdir()) == sorted(
        osp.basename(p) for p in written)
    for path in written:
        assert max(png_size(path)) == IMAGE_SIDE[task]


@pytest.mark.parametrize('args,message', [
    (['--task', 'det', '--source', 'coco_c'],
     r"expansion_demo.py: task 'det' has no source 'coco_c' .*"
     r"\['coco_a', 'coco_b'\]"),
    (['--task', 'depth', '--source', 'coco_a'],
     r"expansion_demo.py: train_dataloader has no task 'depth'; its tasks "
     r"are \['cls', 'det', 'seg'\]"),
])
def test_browse_dataset_unknown_names(args, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        load_tool('browse_dataset').main(
            [DEMO_CONFIG, *args, '--output-dir', str(tmp_path), '--not-show'])


# --------------------------------------------------------------- TensorBoard

def test_tensorboard_tags_by_task(demo_run):
    scalars_json = find_scalars(demo_run)
    events = EventAccumulator(osp.dirname(scalars_json))
    events.Reload()
    tags = set(events.Tags()['scalars'])
    assert {
        'det/coco_a/loss_cls', 'det/coco_b/loss_bbox', 'det/loss_rpn_cls',
        'det/task_loss', 'cls/folder_cls/loss', 'cls/task_loss',
        'seg/decode/ade/loss_ce', 'loss', 'lr'
    } <= tags
    assert not [tag for tag in tags if '.' in tag]
    assert len(events.Scalars('det/task_loss')) == MAX_ITERS
    # The log's own names are kept.
    assert 'det.coco_a.loss_cls' in load_scalars(demo_run)


@pytest.mark.parametrize('name,tag', [
    ('det.coco_a.loss_cls', 'det/coco_a/loss_cls'),
    ('det.task_loss', 'det/task_loss'),
    ('cls.level2.hint_loss', 'cls/level2/hint_loss'),
    ('lr', 'lr'),
    ('coco_a/coco/bbox_mAP', 'coco_a/coco/bbox_mAP'),
    ('folder_cls/accuracy/top1_thr-0.50', 'folder_cls/accuracy/top1_thr-0.50'),
])
def test_tensorboard_tag(name, tag):
    assert tensorboard_tag(name) == tag
    assert (TaskLayout.split_log_name(name) is None) == (name == tag)
