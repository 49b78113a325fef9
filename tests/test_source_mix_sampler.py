"""Tests of SourceMixSampler's global-batch composition: on fake multi-source
datasets with simulated ranks, on the sampler and dataloader of every
training config under configs/xlearner/, and the source-mix table the
multi-task loop logs."""
import glob
import itertools
import math
import os.path as osp
import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from mmengine.config import Config

import xlearner_mm.datasets.samplers.source_mix_sampler as sms
from xlearner_mm.datasets.samplers.source_mix_sampler import (
    SourceMixSampler, describe_source_mix)
from xlearner_mm.registry import DATA_SAMPLERS, DATASETS


@DATASETS.register_module(force=True)
class FakeSourcesDataset(torch.utils.data.Dataset):
    """What SourceMixSampler reads of a MultiSourceDataset: ``task``,
    ``source_names``, the sized ``datasets`` and ``cumulative_sizes``.
    ``sizes`` maps the source names to their lengths."""

    def __init__(self, task: str = 'cls', sizes: dict = None) -> None:
        self.task = task
        self.source_names = list(sizes)
        self.datasets = [range(n) for n in sizes.values()]
        self.cumulative_sizes = list(itertools.accumulate(sizes.values()))
        self.metainfo = dict(task=task)
        self.full_init_calls = 0

    def full_init(self) -> None:
        self.full_init_calls += 1

    def __len__(self) -> int:
        return self.cumulative_sizes[-1] if self.cumulative_sizes else 0

    def __getitem__(self, idx: int) -> dict:
        return dict(inputs=torch.tensor([float(idx)]))


def make_samplers(monkeypatch, sizes, batch_size, ratio='size', world=1,
                  task='cls', **kwargs):
    """One sampler per rank of ``world`` (``get_dist_info`` patched)."""
    dataset = FakeSourcesDataset(task, sizes)
    samplers = []
    for rank in range(world):
        monkeypatch.setattr(sms, 'get_dist_info', lambda r=rank: (r, world))
        samplers.append(
            SourceMixSampler(dataset, batch_size, ratio, **kwargs))
    monkeypatch.setattr(sms, 'get_dist_info', lambda: (0, 1))
    return samplers


def draw(sampler, num_batches):
    """The first ``num_batches`` batches of a fresh iterator."""
    iterator = iter(sampler)
    return [[next(iterator) for _ in range(sampler.batch_size)]
            for _ in range(num_batches)]


def source_of(sampler, index):
    """The source (its position) a global index belongs to."""
    return int(np.searchsorted(sampler.cumulative_sizes[1:], index,
                               side='right'))


def counts_of(sampler, batch):
    counts = [0] * len(sampler.source_names)
    for index in batch:
        counts[source_of(sampler, index)] += 1
    return counts


def expected_per_global_batch(sampler):
    """G * p_s, exactly."""
    ratio = [Fraction(r) for r in sampler.source_ratio]
    return [sampler.global_batch_size * r / sum(ratio) for r in ratio]


def check_global_batches(samplers, per_rank):
    """Every global batch (the ranks' batches of one iteration): each source
    has floor or ceil of its share of it, the ranks draw disjoint samples
    (within an epoch of a source: a global batch that reads the end of one
    epoch and the start of the next may hold a sample twice), and the
    ranks' batches are ordered by source."""
    first = samplers[0]
    world = len(samplers)
    expected = expected_per_global_batch(first)
    offsets = np.zeros(len(first.source_names), dtype=np.int64)
    for i, batches in enumerate(zip(*per_rank)):
        for batch in batches:
            assert len(batch) == first.batch_size
            sources = [source_of(first, idx) for idx in batch]
            assert sources == sorted(sources), (i, batch)
        merged = sum(batches, [])
        # The global slots: rank (j + i) % w holds slot j.
        slots = [None] * first.global_batch_size
        for rank, batch in enumerate(batches):
            for t, idx in enumerate(batch):
                slots[(rank - i) % world + world * t] = idx
        start = 0
        for s, count in enumerate(first.source_counts(i).tolist()):
            size = first.source_sizes[s]
            epochs = {}
            for k, idx in enumerate(slots[start:start + count]):
                assert source_of(first, idx) == s, (i, slots)
                epochs.setdefault((offsets[s] + k) // size, []).append(idx)
            for epoch, indices in epochs.items():
                assert len(set(indices)) == len(indices), (
                    f'iteration {i}: ranks overlap in epoch {epoch} of '
                    f'{first.source_names[s]!r}')
            start += count
            offsets[s] += count
        counts = counts_of(first, merged)
        assert counts == first.source_counts(i).tolist()
        for name, count, share in zip(first.source_names, counts, expected):
            assert math.floor(share) <= count <= math.ceil(share), (
                f'iteration {i}: {count} of {name!r}, share {float(share)}')
            assert count >= 1, f'iteration {i}: no {name!r}'


# ------------------------------------------------------------ composition

SIZES = dict(big=1000, mid=300, small=37)


@pytest.mark.parametrize('ratio, batch_size, world', [
    ('size', 4, 8),     # 'small': 1.4 of a global batch of 32
    ([1, 1, 1], 2, 8),  # the extended det mix: 2 per rank, 16 globally
    ([5, 3, 2], 3, 4),
    ([0.7, 0.2, 0.1], 7, 3),
    (dict(small=1, big=2, mid=1), 16, 1),
])
def test_every_global_batch_holds_its_share(monkeypatch, ratio, batch_size,
                                            world):
    if ratio == 'size':
        sizes = dict(SIZES, small=60)  # 32 * 60 / 1360 = 1.4 per batch
    else:
        sizes = SIZES
    samplers = make_samplers(monkeypatch, sizes, batch_size, ratio, world,
                             seed=3)
    per_rank = [draw(s, 40) for s in samplers]
    check_global_batches(samplers, per_rank)
    # The counts of many iterations: floor or ceil, summing to G.
    counts = samplers[0].source_counts(np.arange(20000))
    expected = np.array(
        [float(e) for e in expected_per_global_batch(samplers[0])])
    assert (counts.sum(axis=1) == batch_size * world).all()
    assert (counts >= np.floor(expected)).all()
    assert (counts <= np.ceil(expected)).all()
    # The long-run shares are the ratio's.
    assert np.abs(counts.mean(axis=0) - expected).max() < 1e-3


def test_indices_stay_in_their_source_and_cover_each_epoch(monkeypatch):
    sizes = dict(a=24, b=10, c=6)
    for shuffle in (True, False):
        samplers = make_samplers(monkeypatch, sizes, 5, [2, 1, 1], world=2,
                                 seed=1, shuffle=shuffle)
        per_rank = [draw(s, 24) for s in samplers]
        first = samplers[0]
        # 24 global batches of 10: 120 images of 'a' (5 epochs), about 60
        # of 'b' (6) and of 'c' (10).
        offsets = first._offsets(24)
        assert offsets[0] == 120 and offsets.sum() == 240
        assert abs(offsets[1] - 60) <= 2
        # Reassemble the global stream of each source: rank (j + i) % w
        # holds slot j of iteration i, the slots ordered by source.
        stream = {name: [] for name in sizes}
        for i, batches in enumerate(zip(*per_rank)):
            counts = first.source_counts(i)
            ends = np.cumsum(counts)
            slots = [None] * first.global_batch_size
            for rank, batch in enumerate(batches):
                for t, idx in enumerate(batch):
                    slots[(rank - i) % 2 + 2 * t] = idx
            for s, name in enumerate(sizes):
                stream[name] += slots[ends[s] - counts[s]:ends[s]]
        for s, name in enumerate(sizes):
            size = sizes[name]
            base = first.cumulative_sizes[s]
            values = [idx - base for idx in stream[name]]
            assert all(0 <= v < size for v in values)
            for start in range(0, len(values) - size + 1, size):
                epoch = values[start:start + size]
                assert sorted(epoch) == list(range(size))
                if not shuffle:
                    assert epoch == list(range(size))


def test_every_rank_sees_every_source(monkeypatch):
    # 'c' has 1.6 images of a global batch of 16 (2 per rank x 8).
    samplers = make_samplers(monkeypatch, dict(a=500, b=300, c=90), 2,
                             'size', world=8, seed=0)
    for sampler in samplers:
        seen = {source_of(sampler, idx) for batch in draw(sampler, 40)
                for idx in batch}
        assert seen == {0, 1, 2}


def test_even_split_gives_each_rank_the_same_composition(monkeypatch):
    samplers = make_samplers(monkeypatch, dict(a=50, b=20), 8, [1, 1],
                             world=2, seed=0)
    per_rank = [draw(s, 30) for s in samplers]
    for batches in per_rank:
        assert all(counts_of(samplers[0], b) == [4, 4] for b in batches)
    check_global_batches(samplers, per_rank)


def test_one_process_draws_the_global_batches_of_many(monkeypatch):
    """batch_size G on 1 process and G / w on each of w ranks: the same
    samples in every iteration."""
    sizes = dict(a=70, b=33, c=9)
    one, = make_samplers(monkeypatch, sizes, 12, [3, 2, 1], world=1, seed=9)
    ranks = make_samplers(monkeypatch, sizes, 3, [3, 2, 1], world=4, seed=9)
    per_rank = [draw(s, 25) for s in ranks]
    for batch, batches in zip(draw(one, 25), zip(*per_rank)):
        assert sorted(batch) == sorted(sum(batches, []))


def test_num_replicas_draws_one_rank_of_a_larger_world(monkeypatch):
    """A 1-process run with num_replicas=8 (the rehearsal) draws what rank
    0 of 8 draws: one GPU's share of the 8-GPU global batch, of 3 sources
    in a per-rank batch of 2."""
    sizes = dict(a=70, b=33, c=9)
    ranks = make_samplers(monkeypatch, sizes, 2, [1, 1, 1], world=8, seed=3)
    alone, = make_samplers(monkeypatch, sizes, 2, [1, 1, 1], world=1,
                           seed=3, num_replicas=8)
    assert alone.global_batch_size == 16
    assert draw(alone, 30) == draw(ranks[0], 30)
    with pytest.raises(ValueError, match='rank 8 .* among the 8 replicas'):
        make_samplers(monkeypatch, sizes, 2, world=1, num_replicas=8, rank=8)


def test_seed_sets_the_streams(monkeypatch):
    sizes = dict(a=40, b=16)

    def first(seed):
        sampler, = make_samplers(monkeypatch, sizes, 4, [1, 1], seed=seed)
        return draw(sampler, 10)

    assert first(3) == first(3)
    assert first(3) != first(4)
    # No seed: the one the ranks share.
    monkeypatch.setattr(sms, 'sync_random_seed', lambda: 123)
    sampler, = make_samplers(monkeypatch, sizes, 4, [1, 1])
    assert sampler.seed == 123 and draw(sampler, 10) == first(123)


@pytest.mark.parametrize('world', [1, 3])
def test_fast_forward_equals_an_uninterrupted_run(monkeypatch, world):
    # A small source crosses several epochs in 40 iterations.
    sizes = dict(a=45, b=13, c=7)
    samplers = make_samplers(monkeypatch, sizes, 5, [4, 3, 2], world, seed=2)
    for sampler in samplers:
        reference = draw(sampler, 40)
        for skip in (0, 1, 7, 23, 39):
            sampler.fast_forward(skip)
            assert draw(sampler, 40 - skip) == reference[skip:], skip
        # Only the next iterator skips.
        assert draw(sampler, 3) == reference[:3]
    with pytest.raises(ValueError, match='>= 0'):
        samplers[0].fast_forward(-1)


def test_fast_forward_is_computed_not_drawn(monkeypatch):
    """150k iterations of the paper's classification mix on 8 ranks are
    skipped without drawing a shuffle of the skipped epochs."""
    sizes = dict(imagenet=1281167, inat2021=2686843, places365=8026628)
    sampler = make_samplers(monkeypatch, sizes, 64, 'size', world=8,
                            seed=0)[0]
    drawn = []
    real_epoch = sampler._epoch
    monkeypatch.setattr(sampler, '_epoch',
                        lambda s, e: drawn.append((s, e)) or real_epoch(s, e))
    sampler.fast_forward(150000)
    batch = next(iter(sampler))
    # Only the epochs the next batch reads are drawn: 150000 global
    # batches of 512 are 6.4 epochs of every source (ratio 'size').
    assert sorted(drawn) == [(0, 6), (1, 6), (2, 6)]
    offsets = sampler._offsets(150000)
    assert offsets.sum() == 150000 * 512
    assert 0 <= batch - sampler.cumulative_sizes[0] < 1281167


# ------------------------------------------------------------ refusals


@pytest.mark.parametrize('ratio, batch_size, world, match', [
    # 16 a global batch on 8 ranks; 2 on 1.
    ([1, 1, 1], 2, 1, r"source 'a' a share of 33\.333%, i\.e\. 0\.667 "
     r"images; source 'b' .*; source 'c' .* of the global batch G = "
     r"batch_size x world size = 2 x 1 = 2:"),
    ([10, 10, 1], 2, 8, r"gives source 'c' a share of 4\.762%, i\.e\. 0\.762 "
     r"images of the global batch G = .* = 2 x 8 = 16:"),
    ([1, 0, 1], 64, 8, r"gives source 'b' a share of 0\.000%, i\.e\. 0 "),
])
def test_share_below_one_image_of_the_global_batch_is_refused(
        monkeypatch, ratio, batch_size, world, match):
    with pytest.raises(ValueError, match=match) as info:
        make_samplers(monkeypatch, dict(a=10, b=10, c=10), batch_size, ratio,
                      world, seed=0)
    message = str(info.value)
    assert "task 'cls'" in message
    assert 'Raise its ratio or the batch size, or drop the source' in message


def test_share_below_one_image_per_rank_is_fine(monkeypatch):
    """The det mix of the extended settings: 3 sources, 2 images per rank."""
    samplers = make_samplers(monkeypatch, dict(a=10, b=10, c=10), 2,
                             [1, 1, 1], world=8, seed=0)
    check_global_batches(samplers, [draw(s, 12) for s in samplers])


@pytest.mark.parametrize('ratio, error, match', [
    (dict(big=1, smal=1), ValueError, r"unknown: \['smal'\]"),
    (dict(big=1), ValueError, r"missing: \['small'\]"),
    ([1, 2, 3], ValueError, 'one entry per source'),
    ([1, -1], ValueError, 'non-negative'),
    ([1, float('nan')], ValueError, 'non-negative'),
    ([0, 0], ValueError, 'positive sum'),
    ('equal', TypeError, 'source_ratio'),
])
def test_invalid_ratio(monkeypatch, ratio, error, match):
    with pytest.raises(error, match=match):
        make_samplers(monkeypatch, dict(big=32, small=8), 4, ratio, seed=0)


def test_empty_source_is_refused(monkeypatch):
    with pytest.raises(ValueError,
                       match="Source 'small' of task 'det' has no samples"):
        make_samplers(monkeypatch, dict(big=32, small=0), 4, [1, 1],
                      task='det', seed=0)


def test_dataset_without_sources_and_bad_batch_size(monkeypatch):
    with pytest.raises(TypeError, match='source_names'):
        SourceMixSampler(list(range(10)), 4, seed=0)
    with pytest.raises(ValueError, match='batch_size'):
        make_samplers(monkeypatch, dict(a=4), 0, seed=0)


def test_registry_len_set_epoch_and_full_init():
    dataset = FakeSourcesDataset('cls', dict(a=30, b=10))
    sampler = DATA_SAMPLERS.build(
        dict(type='SourceMixSampler', dataset=dataset, batch_size=4,
             source_ratio=[1, 1], seed=0))
    assert isinstance(sampler, SourceMixSampler)
    assert isinstance(sampler, torch.utils.data.Sampler)
    assert dataset.full_init_calls == 1
    assert len(sampler) == 40
    before = draw(sampler, 5)
    sampler.set_epoch(3)
    assert draw(sampler, 5) == before


def test_dataloader_cuts_the_sampler_batches(monkeypatch):
    sampler, = make_samplers(monkeypatch, dict(a=30, b=10), 4, [1, 3],
                             seed=0)
    loader = torch.utils.data.DataLoader(sampler.dataset, batch_size=4,
                                         sampler=sampler)
    for batch, expected in zip(loader, draw(sampler, 3)):
        assert batch['inputs'].flatten().long().tolist() == expected
        assert counts_of(sampler, expected) == [1, 3]


# ------------------------------------------------------------ the table


def test_source_mix_and_its_table(monkeypatch):
    sizes = dict(imagenet=1000, tiny=100)
    sampler, = make_samplers(monkeypatch, sizes, 10, [3, 1], world=1, seed=0)
    mix = sampler.source_mix()
    assert mix == [
        dict(name='imagenet', share=0.75, per_global_batch=7.5,
             per_rank=7.5, size=1000),
        dict(name='tiny', share=0.25, per_global_batch=2.5, per_rank=2.5,
             size=100),
    ]
    text = describe_source_mix(sampler, max_iters=200)
    lines = text.splitlines()
    assert lines[0] == ("Source mix of task 'cls': global batch 10 = 10 per "
                        'rank x 1 rank(s)')
    assert 'epochs in 200 iters' in lines[1]
    # 200 * 7.5 / 1000 and 200 * 2.5 / 100 epochs.
    assert re.search(r'imagenet\s+75\.00%\s+7\.50\s+7\.50\s+1,000\s+1\.50$',
                     lines[2]), lines[2]
    assert re.search(r'tiny\s+25\.00%\s+2\.50\s+2\.50\s+100\s+5\.00$',
                     lines[3]), lines[3]
    assert 'epochs' not in describe_source_mix(sampler)


def test_the_loop_logs_the_source_mix(tmp_path, monkeypatch):
    """A Runner's MultiTaskIterBasedTrainLoop logs the table of the task
    whose sampler has a source mix, and nothing for the other."""
    from test_engine import build_runner, make_cfg

    import xlearner_mm.engine.loops.multi_task_loops as loops
    logged = []
    real_print_log = loops.print_log

    def record(msg, logger=None, level=20):
        logged.append((msg, logger))
        real_print_log(msg, logger=logger, level=level)

    monkeypatch.setattr(loops, 'print_log', record)
    cfg = make_cfg(tmp_path, max_iters=30, val=False)
    cfg['train_dataloader']['det'] = dict(
        batch_size=3,
        num_workers=0,
        dataset=dict(type='FakeSourcesDataset', task='det',
                     sizes=dict(coco=60, wider=30)),
        sampler=dict(type='SourceMixSampler', source_ratio=[2, 1]))
    runner = build_runner(cfg)
    loop = runner.train_loop
    assert isinstance(loop.dataloaders['det'].sampler, SourceMixSampler)
    tables = [(msg, logger) for msg, logger in logged
              if msg.startswith('Source mix')]
    assert len(tables) == 1
    text, logger = tables[0]
    assert logger == 'current'
    assert text.startswith("Source mix of task 'det': global batch 3")
    # 30 iterations of 2 coco and 1 wider: 1 epoch of each.
    assert re.search(r'coco\s+66\.67%\s+2\.00.*\s1\.00$', text, re.M), text
    assert re.search(r'wider\s+33\.33%\s+1\.00.*\s1\.00$', text, re.M), text


# ------------------------------------------------------------ the configs

WORLD_SIZE = 8
NUM_ITERS = 20


def training_configs():
    """The configs under configs/xlearner/ that train (a recipe of several
    stages, with a top-level `stages`, names its stages' configs)."""
    configs = {}
    for path in sorted(
            glob.glob('configs/xlearner/**/*.py', recursive=True)):
        cfg = Config.fromfile(path)
        if 'stages' not in cfg:
            configs[osp.relpath(path, 'configs/xlearner')] = cfg
    return configs


@pytest.fixture(scope='module')
def xlearner_configs():
    return training_configs()


def declared_sizes(cfg, loader, task, config_name):
    sources = list(loader.dataset.sources)
    expected = loader.dataset.get('expected_sizes') or {}
    sizes = {}
    for source in sources:
        size = expected.get(source, cfg.get(f'{source}_train_size'))
        if size is None:
            pytest.fail(
                f'{config_name}: source {source!r} of task {task!r} has no '
                f'declared size: neither train_dataloader.{task}.dataset.'
                f'expected_sizes[{source!r}] nor {source}_train_size')
        sizes[source] = size
    return sizes


def test_every_training_config_composes_its_global_batches(
        xlearner_configs, monkeypatch):
    """Each task loader of each training config, on 8 ranks, on a fake
    dataset of the sources' declared sizes: every source in every global
    batch, within one image of its share, the ranks disjoint."""
    assert len(xlearner_configs) > 10
    # The ranks and the configs share the shuffles (an epoch of Places365 is
    # a permutation of 8M): drawn once.
    shuffles = {}
    real_epoch = SourceMixSampler._epoch

    def cached_epoch(self, source, epoch):
        key = (self.seed, self.shuffle, self.source_sizes[source], source,
               epoch)
        if key not in shuffles:
            shuffles[key] = real_epoch(self, source, epoch)
        return shuffles[key]

    monkeypatch.setattr(SourceMixSampler, '_epoch', cached_epoch)
    monkeypatch.setattr(sms, 'sync_random_seed', lambda: 2022)
    checked, tables = {}, {}
    for name, cfg in xlearner_configs.items():
        loaders = cfg.get('train_dataloader')
        assert isinstance(loaders, dict) and loaders, name
        for task, loader in loaders.items():
            assert loader.sampler.type == 'SourceMixSampler', (name, task)
            sizes = declared_sizes(cfg, loader, task, name)
            key = (task, tuple(sizes.items()), loader.batch_size,
                   repr(loader.sampler))
            if key in checked:
                tables[name, task] = checked[key]
                continue
            dataset = FakeSourcesDataset(task, sizes)
            samplers = []
            for rank in range(WORLD_SIZE):
                monkeypatch.setattr(sms, 'get_dist_info',
                                    lambda r=rank: (r, WORLD_SIZE))
                samplers.append(
                    DATA_SAMPLERS.build(
                        dict(loader.sampler, dataset=dataset,
                             batch_size=loader.batch_size)))
            try:
                check_global_batches(samplers,
                                     [draw(s, NUM_ITERS) for s in samplers])
            except AssertionError as error:
                raise AssertionError(f'{name}, task {task!r}: {error}')
            checked[key] = tables[name, task] = describe_source_mix(
                samplers[0], cfg.train_cfg.get('max_iters'), task)
    # The paper's base mix on 8 GPUs: 6.4 epochs of every classification
    # source (ratio 'size') in 150k iterations.
    base = tables['expansion_r50.py', 'cls']
    assert 'epochs in 150000 iters' in base
    assert re.search(r'^imagenet .* 6\.40$', base, re.M), base
