"""Tests of the multi-task loops, RandomStateHook and tools/train.py, test.py.

The toy dataset, sampler, model, metric and hooks below are registered when
this module is imported, which configs run by the tools do through
``custom_imports=dict(imports=['test_engine'])`` with ``tests/`` on
PYTHONPATH.
"""
import itertools
import json
import os
import os.path as osp
import random
import socket
import subprocess
import sys

import mmengine
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.registry import METRICS
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch import nn
from torch.utils.data import Sampler

import xlearner_mm  # noqa: F401  (checkpoint allow-list for resuming)
from _tools import REPO_ROOT
from xlearner_mm.engine import MultiTaskDataLoader
from xlearner_mm.registry import DATA_SAMPLERS, DATASETS, HOOKS, MODELS



@DATASETS.register_module(force=True)
class ToyTaskDataset(torch.utils.data.Dataset):
    """``size`` samples of one task. Loading a sample draws from python's
    generator, as data augmentation does, and is recorded in ``loaded``.
    ``untasked=True`` leaves out the ``task`` attribute, as stock datasets
    do."""

    def __init__(self, task: str, size: int, untasked: bool = False) -> None:
        if not untasked:
            self.task = task
        self.size = size
        self.metainfo = dict(task=task, classes=(f'{task}_a', f'{task}_b'))
        self.loaded = []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, idx: int) -> dict:
        self.loaded.append(idx)
        data_sample = BaseDataElement(
            metainfo=dict(idx=idx, aug=random.random()))
        return dict(
            inputs=torch.tensor([float(idx)]), data_samples=data_sample)


@DATA_SAMPLERS.register_module(force=True)
class ToyFastForwardSampler(Sampler):
    """Endless seeded permutations, consumed ``batch_size`` indices per
    batch, with a ``fast_forward`` like SourceMixSampler's."""

    def __init__(self, dataset, batch_size: int, seed=None) -> None:
        self.size = len(dataset)
        self.batch_size = batch_size
        self.seed = 0 if seed is None else seed
        self._skip = 0

    def fast_forward(self, num_batches: int) -> None:
        self._skip = num_batches * self.batch_size

    def _indices(self):
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self):
        skip, self._skip = self._skip, 0
        return itertools.islice(self._indices(), skip, None)

    def __len__(self) -> int:
        return self.size


@MODELS.register_module(force=True)
class ToyMultiTaskModel(BaseModel):
    """Takes ``{task: batch}`` through BaseModel's train_step / val_step (so
    it also works under MMDistributedDataParallel), records what it gets and
    draws from every generator, as dropout or drop path would."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.train_records = []
        self.predict_records = []

    @staticmethod
    def _draws() -> list:
        return [random.random(), float(np.random.rand()), torch.rand(1).item()]

    def forward(self, mode: str = 'tensor', **task_batches):
        if mode == 'loss':
            self.train_records.append(
                dict(
                    batches={
                        task: [s.idx for s in batch['data_samples']]
                        for task, batch in task_batches.items()
                    },
                    augs={
                        task: [s.aug for s in batch['data_samples']]
                        for task, batch in task_batches.items()
                    },
                    draws=self._draws()))
            loss = sum(
                self.linear(torch.stack(batch['inputs'])).mean()
                for batch in task_batches.values())
            return dict(loss=loss)
        assert mode == 'predict' and len(task_batches) == 1, mode
        (task, batch), = task_batches.items()
        self.predict_records.append(
            (task, [s.idx for s in batch['data_samples']], self._draws()))
        for data_sample in batch['data_samples']:
            data_sample.set_metainfo(dict(pred_task=task))
        return batch['data_samples']


@METRICS.register_module(force=True)
class ToyTaskMetric(BaseMetric):
    """Counts the predictions, and those made for its dataset's task."""

    def process(self, data_batch, data_samples) -> None:
        for data_sample in data_samples:
            self.results.append(
                data_sample['pred_task'] == self.dataset_meta['task'])

    def compute_metrics(self, results: list) -> dict:
        return dict(count=len(results), right_task=sum(results))


@HOOKS.register_module(force=True)
class RecordEvalHook(Hook):
    """Records the batch indices and the metrics the eval loops report."""

    def __init__(self) -> None:
        self.batch_idx = []
        self.metrics = []

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.batch_idx.append((batch_idx, list(data_batch)))

    before_test_iter = before_val_iter

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics.append(metrics)

    after_test_epoch = after_val_epoch


@HOOKS.register_module(force=True)
class DumpRecordsHook(Hook):
    """Writes the model's train records of each rank to the work_dir."""

    def after_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        with open(osp.join(runner.work_dir,
                           f'records_rank{runner.rank}.json'), 'w') as f:
            json.dump(model.train_records, f)


def make_cfg(work_dir, max_iters=6, cls_size=6, val=True, **overrides):
    """A config training tasks ``cls`` (finite DefaultSampler, batch 2) and
    ``det`` (ToyFastForwardSampler, batch 3), checkpointing and validating
    every 3 iterations."""
    cfg = dict(
        default_scope='xlearner_mm',
        work_dir=str(work_dir),
        experiment_name=osp.basename(str(work_dir)),
        model=dict(type='ToyMultiTaskModel'),
        train_dataloader=dict(
            cls=dict(
                batch_size=2,
                num_workers=0,
                dataset=dict(type='ToyTaskDataset', task='cls', size=cls_size),
                sampler=dict(type='DefaultSampler', shuffle=True)),
            det=dict(
                batch_size=3,
                num_workers=0,
                dataset=dict(type='ToyTaskDataset', task='det', size=5),
                sampler=dict(type='ToyFastForwardSampler', batch_size=3))),
        train_cfg=dict(
            type='MultiTaskIterBasedTrainLoop',
            max_iters=max_iters,
            val_interval=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=3,
                            by_epoch=False)),
        custom_hooks=[
            dict(type='RandomStateHook'),
            dict(type='RecordEvalHook'),
            dict(type='DumpRecordsHook')
        ],
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=42))
    if val:
        eval_cfg = dict(
            dataloader=dict(
                cls_val=dict(
                    batch_size=2,
                    dataset=dict(type='ToyTaskDataset', task='cls', size=3),
                    sampler=dict(type='DefaultSampler', shuffle=False)),
                det_val=dict(
                    batch_size=4,
                    dataset=dict(type='ToyTaskDataset', task='det', size=4),
                    sampler=dict(type='DefaultSampler', shuffle=False))),
            evaluator=dict(
                cls_val=dict(type='ToyTaskMetric'),
                det_val=dict(type='ToyTaskMetric')))
        for stage in ('val', 'test'):
            cfg.update({
                f'{stage}_dataloader': eval_cfg['dataloader'],
                f'{stage}_evaluator': eval_cfg['evaluator'],
                f'{stage}_cfg': dict(type=f'MultiTask{stage.title()}Loop'),
            })
    cfg.update(overrides)
    return cfg


def build_runner(cfg: dict) -> Runner:
    return Runner.from_cfg(Config(cfg))


def train(cfg: dict) -> Runner:
    runner = build_runner(cfg)
    runner.train()
    return runner


def get_hook(runner: Runner, hook_type: type) -> Hook:
    hook, = [hook for hook in runner.hooks if isinstance(hook, hook_type)]
    return hook


def test_train_loop_one_batch_per_task(tmp_path):
    runner = train(make_cfg(tmp_path, max_iters=6, val=False))
    records = runner.model.train_records

    assert runner.iter == 6 and len(records) == 6
    for record in records:
        assert {task: len(idx) for task, idx in record['batches'].items()} \
            == dict(cls=2, det=3)
    # cls (6 samples, batch 2, finite) restarts after 3 iterations, with
    # the next epoch's shuffle.
    cls_batches = [record['batches']['cls'] for record in records]
    for epoch in (cls_batches[:3], cls_batches[3:]):
        assert sorted(sum(epoch, [])) == list(range(6))
    assert cls_batches[:3] != cls_batches[3:]

    # What mmengine's hooks and checkpoints read of runner.train_dataloader.
    group = runner.train_dataloader
    assert isinstance(group, MultiTaskDataLoader)
    assert set(group.dataloaders) == {'cls', 'det'}
    assert len(group) == 3  # the longest task dataloader
    metainfo = {
        task: dict(task=task, classes=(f'{task}_a', f'{task}_b'))
        for task in ('cls', 'det')
    }
    assert group.dataset.metainfo == metainfo
    assert runner.message_hub.get_info('dataset_meta') == metainfo
    checkpoint = torch.load(osp.join(tmp_path, 'iter_6.pth'))
    assert checkpoint['meta']['dataset_meta'] == metainfo
    assert len(checkpoint['random_states']) == 1


def test_fast_forward_only_before_the_first_batch(tmp_path):
    """A started iterator has drawn indices beyond its batch (workers
    prefetch), so its sampler cannot skip from there."""
    batches = build_runner(make_cfg(tmp_path, val=False)).train_dataloader
    batch = next(iter(batches))
    assert {task: len(b['inputs']) for task, b in batch.items()} == dict(
        cls=2, det=3)
    with pytest.raises(RuntimeError, match='before the first batch'):
        batches.fast_forward(1)


def test_eval_loops_every_name_with_its_task(tmp_path):
    runner = build_runner(make_cfg(tmp_path))
    for stage in ('val', 'test'):
        runner.model.predict_records.clear()
        metrics = getattr(runner, stage)()

        expected = {
            'cls_val/count': 3, 'cls_val/right_task': 3,
            'det_val/count': 4, 'det_val/right_task': 4
        }
        assert metrics == expected
        hook = get_hook(runner, RecordEvalHook)
        assert hook.metrics[-1] == expected
        assert [(task, idx) for task, idx, _ in runner.model.predict_records
                ] == [('cls', [0, 1]), ('cls', [2]), ('det', [0, 1, 2, 3])]
        # batch_idx runs over all dataloaders, as len(loop.dataloader) does.
        assert hook.batch_idx[-3:] == [(0, ['cls']), (1, ['cls']),
                                       (2, ['det'])]
        assert len(getattr(runner, f'{stage}_dataloader')) == 3
        evaluators = getattr(runner, f'{stage}_loop').evaluators
        assert evaluators['det_val'].dataset_meta['task'] == 'det'


@pytest.mark.parametrize('overrides, error, message', [
    (dict(val_evaluator=dict(cls_val=dict(type='ToyTaskMetric'),
                             seg_val=dict(type='ToyTaskMetric'))),
     ValueError, r"val_dataloader names \['cls_val', 'det_val'\] and "
     r"val_evaluator names \['cls_val', 'seg_val'\]"),
    (dict(val_evaluator=dict(type='ToyTaskMetric')), ValueError,
     r"val_evaluator names \['type'\]"),
    (dict(val_dataloader=dict(cls_val=dict(
        batch_size=2,
        dataset=dict(type='ToyTaskDataset', task='cls', size=2,
                     untasked=True),
        sampler=dict(type='DefaultSampler', shuffle=False))),
          val_evaluator=dict(cls_val=dict(type='ToyTaskMetric'))),
     AttributeError, r'val_dataloader\["cls_val"\]: its dataset '
     'ToyTaskDataset has no `task`'),
    (dict(val_dataloader=dict(batch_size=2, dataset=dict()),
          val_evaluator=dict(batch_size=None, dataset=None)),
     TypeError, r"the values of \['batch_size'\] are not dicts"),
])
def test_eval_loop_config_errors(tmp_path, overrides, error, message):
    runner = build_runner(make_cfg(tmp_path, **overrides))
    with pytest.raises(error, match=message):
        runner.val()


def test_train_dataloader_keys_are_tasks(tmp_path):
    cfg = make_cfg(tmp_path, val=False)
    cfg['train_dataloader']['seg'] = cfg['train_dataloader'].pop('det')
    with pytest.raises(ValueError, match=r'train_dataloader\["seg"\] holds a '
                       'dataset of task "det"'):
        train(cfg)


def test_resume_is_exact(tmp_path):
    full = train(make_cfg(tmp_path / 'full', max_iters=6))
    checkpoint = str(tmp_path / 'full' / 'iter_3.pth')

    resumed = train(
        make_cfg(tmp_path / 'resumed', max_iters=6, load_from=checkpoint,
                 resume=True))
    # Same batches, same data augmentation, same random draws in the model,
    # although `full` validated (drawing random numbers) after iteration 3.
    assert resumed.model.train_records == full.model.train_records[3:]
    loaded = {
        task: loader.dataset.loaded
        for task, loader in resumed.train_loop.dataloaders.items()
    }
    # det's sampler was fast-forwarded: only its 3 resumed batches loaded.
    assert len(loaded['det']) == 3 * 3
    # cls's DefaultSampler has no fast_forward: its 3 skipped batches were
    # loaded too.
    assert len(loaded['cls']) == 6 * 2

    # The control: without RandomStateHook the random draws differ.
    cfg = make_cfg(tmp_path / 'no_hook', max_iters=6, load_from=checkpoint,
                   resume=True)
    cfg['custom_hooks'] = [dict(type='RecordEvalHook')]
    no_hook = train(cfg)
    assert [r['batches'] for r in no_hook.model.train_records] == \
        [r['batches'] for r in full.model.train_records[3:]]
    assert [r['draws'] for r in no_hook.model.train_records] != \
        [r['draws'] for r in full.model.train_records[3:]]


def test_random_states_only_restored_on_resume(tmp_path):
    full = train(make_cfg(tmp_path / 'full', max_iters=3, val=False))
    checkpoint = tmp_path / 'full' / 'iter_3.pth'

    # `load_from` without resume: training starts afresh, as `full` did.
    loaded = train(
        make_cfg(tmp_path / 'load_from', max_iters=3, val=False,
                 load_from=str(checkpoint)))
    assert loaded.model.train_records == full.model.train_records

    # The states of another number of ranks are not restored.
    state = torch.load(checkpoint)
    state['random_states'] = state['random_states'] * 2
    torch.save(state, tmp_path / 'two_ranks.pth')
    train(
        make_cfg(tmp_path / 'two_ranks', max_iters=4, val=False,
                 load_from=str(tmp_path / 'two_ranks.pth'), resume=True))
    log_file, = (tmp_path / 'two_ranks').glob('*/*.log')
    assert 'has the random states of 2 ranks but 1 are running' in \
        log_file.read_text()


def run_tool(*args, env_extra=None, timeout=120):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([
            REPO_ROOT,
            osp.join(REPO_ROOT, 'tests'),
            os.environ.get('PYTHONPATH', '')
        ]),
        **(env_extra or {}))
    result = subprocess.run(
        args, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=timeout)
    assert result.returncode == 0, \
        result.stdout[-3000:] + result.stderr[-3000:]
    return result


def write_config(path, cfg: dict) -> str:
    cfg = dict(cfg, custom_imports=dict(imports=['test_engine']))
    Config(cfg).dump(str(path))
    return str(path)


@pytest.mark.slow
def test_tools_train_and_test(tmp_path):
    """tools/train.py and tools/test.py as a user runs them. (Resuming from
    the command line is run by test_dist_train_resume_on_two_ranks.)"""
    config = write_config(tmp_path / 'toy.py',
                          make_cfg(tmp_path / 'unused', max_iters=6))
    run_tool(sys.executable, 'tools/train.py', config, '--work-dir',
             str(tmp_path / 'train'), '--cfg-options', 'train_cfg.max_iters=4')
    with open(tmp_path / 'train' / 'records_rank0.json') as f:
        assert len(json.load(f)) == 4
    assert (tmp_path / 'train' / 'iter_3.pth').exists()

    run_tool(sys.executable, 'tools/test.py', config,
             str(tmp_path / 'train' / 'iter_4.pth'), '--work-dir',
             str(tmp_path / 'test'), '--out', str(tmp_path / 'results.pkl'))
    for name, size in (('cls_val', 3), ('det_val', 4)):
        results = mmengine.load(str(tmp_path / f'results_{name}.pkl'))
        assert len(results) == size
        assert all(result['pred_task'] == name[:3] for result in results)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_dist_train_resume_on_two_ranks(tmp_path):
    """tools/dist_train.sh on 2 CPU ranks (gloo): each rank resumes with its
    own random states and data."""
    cfg = make_cfg(tmp_path / 'unused', max_iters=4, cls_size=16, val=False,
                   randomness=dict(seed=42, diff_rank_seed=True))
    cfg['default_hooks']['checkpoint']['interval'] = 2
    config = write_config(tmp_path / 'toy.py', cfg)
    for name, extra in (('full', []),
                        ('resumed',
                         ['--resume', str(tmp_path / 'full' / 'iter_2.pth')])):
        run_tool('bash', 'tools/dist_train.sh', config, '2', '--work-dir',
                 str(tmp_path / name), *extra,
                 env_extra=dict(PYTHON=sys.executable, PORT=str(free_port())))

    checkpoint = torch.load(tmp_path / 'full' / 'iter_2.pth')
    assert len(checkpoint['random_states']) == 2
    records = {}
    for name in ('full', 'resumed'):
        for rank in (0, 1):
            with open(tmp_path / name / f'records_rank{rank}.json') as f:
                records[name, rank] = json.load(f)
    for rank in (0, 1):
        assert records['resumed', rank] == records['full', rank][2:]
    # The ranks drew different samples and different random numbers.
    assert records['full', 0] != records['full', 1]
