"""End-to-end runs of the Expansion Stage recipes with mmengine's Runner and
the command-line tools, on the generated demo data (``data/demo``).

Every in-process run loads ``configs/demo/expansion_demo.py`` and changes only
what a short CPU run needs (see :func:`demo_cfg`). The per-iteration losses
are read from the ``outputs`` of ``after_train_iter`` (the raw log_vars of the
iteration; scalars.json holds window-smoothed values).
"""
import itertools
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys
from typing import Optional

import pytest
from _tools import REPO_ROOT, isolate_run
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

import xlearner_mm  # noqa: F401  (checkpoint allow-list for resuming)
from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout, read_checkpoint
from xlearner_mm.utils import register_all_modules

DEMO_CONFIG = 'configs/demo/expansion_demo.py'
R50_CONFIG = 'configs/xlearner/expansion_r50.py'
TASKS = ('cls', 'det', 'seg')


class Recorder(Hook):
    """Keeps the log_vars and the reconciliation phase of every training
    iteration (by 1-based iteration number) and the validation metrics."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.log_vars = {}
        self.reconcile = {}
        self.lr = {}
        self.metrics = None

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        # runner.iter is still the 0-based index of the finished iteration.
        self.log_vars[runner.iter + 1] = {
            key: float(value.detach()) if torch.is_tensor(value) else value
            for key, value in outputs.items()
        }
        # Algorithm 1's phase (a Squeeze model has none).
        self.reconcile[runner.iter + 1] = getattr(model, 'reconcile', None)
        # Set by RuntimeInfoHook before the iteration.
        self.lr[runner.iter + 1] = runner.message_hub.get_scalar(
            'train/lr').current()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics = dict(metrics or {})

    def losses(self, iteration: int) -> dict:
        """``loss``, the task losses and the per-source losses."""
        return {
            key: value
            for key, value in self.log_vars[iteration].items()
            if 'loss' in key
        }


def demo_cfg(work_dir,
             *,
             max_iters: int,
             tau: Optional[int],
             checkpoint_interval: int,
             val: bool = False,
             param_scheduler=None,
             config: str = DEMO_CONFIG) -> Config:
    """A demo recipe (``config``, by default the Expansion demo) for a short
    CPU run in ``work_dir``: no dataloader workers, logs every iteration,
    seed 0, validation only at the end (or none); ``tau`` None leaves the
    recipe's switch (or its lack of one) as it is."""
    cfg = Config.fromfile(config)
    isolate_run(cfg, work_dir, 'e2e')
    for loader in itertools.chain(cfg.train_dataloader.values(),
                                  (cfg.val_dataloader or {}).values()):
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    if tau is not None:
        switch, = [h for h in cfg.custom_hooks
                   if h.type == 'ReconciliationSwitchHook']
        switch.tau = tau
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = checkpoint_interval
    cfg.randomness = dict(seed=0)
    if not val:
        cfg.val_dataloader = None
        cfg.val_cfg = None
        cfg.val_evaluator = None
    if param_scheduler is not None:
        cfg.param_scheduler = param_scheduler
    return cfg


def train(cfg: Config):
    """Train a runner built from ``cfg``; returns (runner, Recorder)."""
    runner = Runner.from_cfg(cfg)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


def log_text(runner) -> str:
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- resume

# Identical in every run of the resume test, so the learning rate does not
# depend on max_iters: warm-up over 3 iterations, then halved from the 7th.
# `end` is explicit: the Runner defaults it to train_cfg.max_iters, and the
# resumed scheduler takes its `end` from the checkpoint, so B's end=4 would
# cancel the milestone in C.
RESUME_SCHEDULE = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=8, milestones=[6],
         gamma=0.5),
]


@pytest.mark.slow
def test_resume_continues_with_the_same_losses(demo_data, tmp_path):
    """A: 8 iterations at once. B: the first 4 (iter_4.pth). C: B resumed to
    8. C's iterations 5..8 are A's: same data (SourceMixSampler fast-forward),
    same random numbers (RandomStateHook: augmentation, RoI sampling,
    dropout), same optimizer, scheduler and reconciliation phase (tau=3)."""
    common = dict(tau=3, checkpoint_interval=4, param_scheduler=RESUME_SCHEDULE)
    runner_a, rec_a = train(demo_cfg(tmp_path / 'a', max_iters=8, **common))
    runner_b, rec_b = train(demo_cfg(tmp_path / 'b', max_iters=4, **common))
    checkpoint = tmp_path / 'b' / 'iter_4.pth'
    assert checkpoint.exists()
    cfg_c = demo_cfg(tmp_path / 'c', max_iters=8, **common)
    cfg_c.resume = True
    cfg_c.load_from = str(checkpoint)
    runner_c, rec_c = train(cfg_c)

    assert sorted(rec_a.log_vars) == list(range(1, 9))
    assert sorted(rec_b.log_vars) == list(range(1, 5))
    assert sorted(rec_c.log_vars) == list(range(5, 9))
    loss_keys = set(rec_a.losses(1))
    assert {'loss', 'cls.task_loss', 'det.task_loss',
            'seg.task_loss'} <= loss_keys
    # The separate phase for iterations 1..3, joint training from 4 on.
    assert [rec_a.reconcile[i] for i in range(1, 9)] == [False] * 3 + [True] * 5
    assert 'Iteration 3: reconciliation on' in log_text(runner_a)
    assert 'Iteration 3: reconciliation on' in log_text(runner_b)
    # The phase survives the resume: C starts at iteration 5 reconciled.
    assert all(rec_c.reconcile[i] for i in range(5, 9))

    def assert_same_losses(rec, iterations):
        for i in iterations:
            expected, got = rec_a.losses(i), rec.losses(i)
            assert set(got) == set(expected), i
            for key in expected:
                assert got[key] == pytest.approx(expected[key], abs=1e-5), (
                    f'iteration {i}, {key}: {got[key]} != {expected[key]}')

    # From scratch the runs agree (else the nondeterminism is not resuming's).
    assert_same_losses(rec_b, range(1, 5))
    assert_same_losses(rec_c, range(5, 9))
    # The learning rate went through the same schedule.
    assert rec_a.lr[6] == pytest.approx(2 * rec_a.lr[7])
    assert [rec_c.lr[i] for i in range(5, 9)] == pytest.approx(
        [rec_a.lr[i] for i in range(5, 9)])

    state_a = runner_a.model.state_dict()
    state_c = runner_c.model.state_dict()
    assert state_a.keys() == state_c.keys()
    for key, value in state_a.items():
        if value.is_floating_point():
            torch.testing.assert_close(
                state_c[key], value, atol=1e-5, rtol=0, msg=key)
        else:
            assert torch.equal(state_c[key], value), key


# ---------------------------------------------------------------- learning


@pytest.mark.slow
def test_demo_trains_and_losses_go_down(demo_data, tmp_path):
    max_iters = 30
    runner, rec = train(
        demo_cfg(
            tmp_path, max_iters=max_iters, tau=10, checkpoint_interval=15,
            val=True))

    assert sorted(rec.log_vars) == list(range(1, max_iters + 1))
    assert [rec.reconcile[i] for i in (10, 11)] == [False, True]
    for task in TASKS:
        key = f'{task}.task_loss'
        losses = [rec.log_vars[i][key] for i in range(1, max_iters + 1)]
        first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
        assert last < first, f'{key}: {losses}'
    assert (tmp_path / 'iter_15.pth').exists()
    # Every checkpoint holds the model's layout (CheckpointConsistencyHook).
    meta = read_checkpoint(str(tmp_path / f'iter_{max_iters}.pth'))['meta']
    assert TaskLayout.from_meta(meta) == runner.model.layout

    # The per-source losses were logged (scalars.json of this run).
    with open(osp.join(runner.log_dir, 'vis_data', 'scalars.json')) as f:
        records = [json.loads(line) for line in f]
    train_records = [r for r in records if 'loss' in r]
    assert len(train_records) == max_iters
    per_source = ['cls.folder_cls.loss', 'cls.annfile_cls.loss',
                  'det.coco_a.loss_cls', 'det.coco_b.loss_cls',
                  'det.coco_a.loss_bbox', 'det.loss_rpn_cls',
                  'seg.decode.ade.loss_ce']
    for key in per_source + [f'{t}.task_loss' for t in TASKS]:
        assert all(key in r for r in train_records), key

    # Validation at the end: every name's metrics under its prefix.
    metrics = rec.metrics
    assert metrics is not None
    for prefix, metric in (('folder_cls/', 'accuracy/top1'),
                           ('annfile_cls/', 'accuracy/top1'),
                           ('coco_a/', 'coco/bbox_mAP'),
                           ('coco_b/', 'coco/bbox_mAP'),
                           ('ade/', 'mIoU')):
        assert prefix + metric in metrics, sorted(metrics)
    val_records = [r for r in records if 'folder_cls/accuracy/top1' in r]
    assert len(val_records) == 1
    assert {'coco_a/coco/bbox_mAP', 'ade/mIoU'} <= set(val_records[0])


# ---------------------------------------------------------------- paper recipe


@pytest.mark.slow
def test_expansion_r50_fails_naming_missing_data_root(tmp_path):
    cfg = Config.fromfile(R50_CONFIG)
    data_roots = {
        source.data_root.rstrip('/')
        for loader in cfg.train_dataloader.values()
        for source in loader.dataset.sources.values()
    }
    assert 'data/imagenet' in data_roots
    missing = sorted(root for root in data_roots if not osp.exists(root))
    if len(missing) != len(data_roots):
        pytest.skip(f'some paper data is present: only {missing} missing')

    proc = subprocess.run(
        [sys.executable, 'tools/train.py', R50_CONFIG, '--work-dir',
         str(tmp_path / 'r50')],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    match = re.search(
        r"FileNotFoundError: Source '(\w+)' of task '(\w+)' \(([\w.]+)\): "
        r"missing data_root '([^']+)'", output)
    assert match, output[-3000:]
    source, task, _, root = match.groups()
    assert root.rstrip('/') in data_roots
    assert source in cfg.train_dataloader[task].dataset.sources
    assert cfg.train_dataloader[task].dataset.sources[source].data_root == root

    # The model itself builds: two ResNet-50 streams and T(T-1)D(D+1)/2
    # reconciliation layers for T=2 tasks of D=4 levels.
    register_all_modules(init_default_scope=False)
    model = MODELS.build(cfg.model)
    assert tuple(model.backbone.streams) == ('cls', 'det')
    for task, stream in model.backbone.streams.items():
        assert type(stream).__name__ == 'ResNet'
        assert stream.depth == 50
        num_params = sum(p.numel() for p in stream.parameters())
        assert abs(num_params - 23.5e6) <= 0.5e6, (task, num_params)
    assert model.neck is not None
    # (T-1) * (1 + 2 + 3 + 4) into det, (T-1) * 4 into the last cls level
    assert model.neck.num_layers == 10 + 4
    assert model.layout.sources == dict(
        cls=('imagenet', 'inat2021', 'places365'),
        det=('coco', 'objects365'))


# ---------------------------------------------------------------- distributed


@pytest.mark.slow
def test_dist_train_two_processes(demo_data, tmp_path):
    """tools/dist_train.sh with 2 CPU processes (gloo) on the demo recipe,
    through tau (2), with ``find_unused_parameters=False``: before tau the
    reconciliation layers get no gradient, so ReconciliationSwitchHook wraps
    the model with DDP ignoring the neck and re-wraps it at tau (otherwise
    the second iteration fails with "Expected to have finished reduction in
    the prior iteration"; the unused parameters are ``neck.reconcilers.*``)."""
    work_dir = tmp_path / 'dist'
    options = [
        'train_cfg.max_iters=4',
        'custom_hooks.1.tau=2',
        'default_hooks.checkpoint.interval=4',
        'default_hooks.logger.interval=1',
        'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None',
        'randomness.seed=0',
    ]
    for task in TASKS:
        options += [f'train_dataloader.{task}.num_workers=0',
                    f'train_dataloader.{task}.persistent_workers=False']
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()))
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', DEMO_CONFIG, '2', '--work-dir',
         str(work_dir), '--cfg-options', *options],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300)
    output = proc.stdout + proc.stderr
    (tmp_path / 'dist_train.log').write_text(output)
    # Both ranks write to one stream: show what went wrong, then the end.
    problems = '\n'.join(
        line for line in output.splitlines()
        if re.search(r'Error|Traceback|terminate|Iter\(train\)', line))
    assert proc.returncode == 0, f'{problems}\n...\n{output[-3000:]}'
    assert 'Iteration 2: reconciliation on' in output, output[-5000:]
    assert 'find_unused_parameters = True' not in output
    for rank_lines in ('Iteration 0: DistributedDataParallel ignores',
                       'Iteration 2: DistributedDataParallel reduces'):
        assert output.count(rank_lines) >= 1, output[-5000:]
    assert re.search(r'Iter\(train\) \[4/4\]', output), output[-5000:]
    assert (work_dir / 'iter_4.pth').exists()
    checkpoint = torch.load(work_dir / 'iter_4.pth')
    assert checkpoint['meta']['iter'] == 4
    # RandomStateHook stored both ranks' generators.
    assert len(checkpoint['random_states']) == 2
