import math
import numbers
from fractions import Fraction
from typing import Dict, Iterator, List, Optional, Sized, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from xlearner_mm.registry import DATA_SAMPLERS
from xlearner_mm.utils import format_table

# The phase of the remainder's systematic sampling is a 32-bit fixed-point
# number in [0, 1) that advances by the golden ratio conjugate
# (sqrt(5) - 1) / 2 each iteration: 0x9E3779B9 / 2**32.
_PHASE_BITS = 32
_PHASE_ONE = 1 << _PHASE_BITS
_GOLDEN_STEP = 0x9E3779B9
_MASK64 = (1 << 64) - 1
# Iterations whose source counts are computed at once by fast_forward.
_CHUNK = 1 << 16


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _hash(*values: int) -> int:
    """A 63-bit hash of integers (a valid ``torch.Generator`` seed)."""
    h = 0
    for value in values:
        h = _splitmix64(h ^ (int(value) & _MASK64))
    return h >> 1


@DATA_SAMPLERS.register_module()
class SourceMixSampler(Sampler):
    """Infinite sampler that composes every global batch of a task (the
    batches of all ranks together) of its sources in a fixed ratio.

    Examples:
        A sampler draws the batches of one task's dataloader in
        ``train_dataloader``, which maps every task to its own dataloader.
        On 8 GPUs the global classification batch is 8 x 64 = 512 images,
        256 ImageNet, 128 iNat2021 and 128 Places365 (32 / 16 / 16 per
        GPU); the global segmentation batch of 8 x 2 = 16 crops holds ADE20K
        and COCO-Stuff in proportion to their sizes. The multi-task loop
        gives each sampler its loader's ``batch_size``; a different sampler
        ``batch_size`` is refused, since the loader must cut the index
        stream at the sampler's batches:

        >>> train_dataloader = dict(
        ...     cls=dict(
        ...         batch_size=64,
        ...         num_workers=8,
        ...         sampler=dict(type='SourceMixSampler',
        ...                      source_ratio=dict(imagenet=2, inat2021=1,
        ...                                        places365=1)),
        ...         dataset=dict(
        ...             type='MultiSourceDataset',
        ...             task='cls',
        ...             pipeline=cls_train_pipeline,
        ...             sources=dict(imagenet=imagenet_train,
        ...                          inat2021=inat2021_train,
        ...                          places365=places365_train))),
        ...     seg=dict(
        ...         batch_size=2,
        ...         num_workers=4,
        ...         sampler=dict(type='SourceMixSampler'),  # 'size'
        ...         dataset=dict(
        ...             type='MultiSourceDataset',
        ...             task='seg',
        ...             pipeline=seg_train_pipeline,
        ...             sources=dict(ade20k=ade20k_train,
        ...                          coco_stuff=coco_stuff_train))))
        >>> train_cfg = dict(type='MultiTaskIterBasedTrainLoop',
        ...                  max_iters=150000)

        The loop logs each task's mix before training
        (:func:`describe_source_mix`): every source's share of the global
        batch, its images per global batch and its epochs over
        ``max_iters``.

    Validation: the ratio is a list in the order of the sources, a dict by
    source name (every source once) or ``'size'``; an empty source is
    refused, and so is a source whose share ``p_s = ratio_s / sum(ratio)``
    of the global batch ``G = batch_size x world_size`` is below one image
    (``G * p_s < 1``, e.g. a ratio of 0): it would be missing from some
    global batches. A share of less than one image per rank is fine.

    How the global batches are composed (deterministic from the seed and the
    iteration ``i``, the same on every rank, no state):

    * Counts: source ``s`` gets ``floor(G * p_s)`` images of iteration
      ``i``; the ``r = G - sum(floors)`` images left go by systematic
      sampling on the fractional parts ``f_s``: laid end to end on
      ``[0, r)``, the sources whose interval holds one of the points
      ``u_i + j`` (``j < r``) get one more, with the phase
      ``u_i = frac(u_0 + i * (sqrt(5) - 1) / 2)`` (``u_0`` from the seed).
      So every source has ``floor`` or ``ceil`` of ``G * p_s`` images in
      every global batch, and exactly ``p_s`` of the images in the long
      run (to the 2**-32 precision of the phase).
    * Streams: each source has one endless shuffle shared by all ranks;
      its epoch ``e`` is a permutation drawn from a generator seeded by
      ``(seed, s, e)`` (``arange`` with ``shuffle=False``), so any position
      is reached without drawing the epochs before it.
    * Ranks: the ``G`` slots of iteration ``i`` are ordered by source; slot
      ``j`` goes to rank ``(j + i) % world_size``, so every rank has
      ``batch_size`` images, the per-rank compositions are as even as the
      counts allow (the same every iteration where every count is a
      multiple of the world size) and every rank sees every source over
      time. The ``k``-th slot of source ``s`` reads position
      ``offset_s(i) + k`` of its stream, ``offset_s(i)`` being the images
      of ``s`` in the iterations before ``i``: the ranks draw disjoint
      samples within each epoch of a source.
    * A rank yields its slots' global indices (the source's index plus the
      sizes of the sources before it), ordered by source, one batch of
      ``batch_size`` per iteration. :meth:`fast_forward` computes the
      offsets of an iteration without drawing indices.

    Unlike mmdet's ``MultiSourceSampler`` (which this sampler subclassed
    before), which splits each rank's batch (``int(batch_size * p_s)`` per
    source, the remainder always to the first source) and so cannot put 3
    sources into a detection batch of 2, the mix is a property of the
    global batch and the remainder rotates over the sources; a 1-process
    run with ``batch_size=G`` draws the same global batches as ``G / w``
    on each of ``w`` ranks.

    Args:
        dataset (MultiSourceDataset): The task's dataset; its
            ``source_names`` name the sources.
        batch_size (int): Samples per batch (per rank), the dataloader's
            ``batch_size``.
        source_ratio (list[int | float] | dict[str, int | float] | str):
            Share of each source in the global batch: a list in the order of
            ``dataset.source_names``, a dict by source name (every source
            once), or ``'size'`` for shares proportional to the source
            sizes. Defaults to ``'size'``.
        shuffle (bool): Whether to shuffle each source. Defaults to True.
        seed (int, optional): Seed of the shuffles and of the remainder's
            phase; the same on all ranks. If None, a random seed shared by
            the ranks is drawn. Defaults to None.
        num_replicas (int, optional): The ranks the global batch is
            composed for; None: the world size. More than the processes
            makes this process draw what rank ``rank`` of that many would,
            e.g. one GPU's share of an 8-GPU global batch in a rehearsal
            (tools/rehearse.py). Defaults to None.
        rank (int, optional): This process's rank among ``num_replicas``;
            None: its rank in the process group. Defaults to None.
    """

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 source_ratio: Union[List[float], Dict[str, float],
                                     str] = 'size',
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 num_replicas: Optional[int] = None,
                 rank: Optional[int] = None) -> None:
        if not hasattr(dataset, 'source_names'):
            raise TypeError('SourceMixSampler needs a MultiSourceDataset '
                            f'(with `source_names`), but got {type(dataset)}')
        if not isinstance(batch_size, int) or isinstance(
                batch_size, bool) or batch_size <= 0:
            raise ValueError('batch_size must be a positive integer, but got '
                             f'{batch_size!r}')
        # A lazily initialised dataset has no `cumulative_sizes` yet.
        dataset.full_init()
        self.dataset = dataset
        self.task = getattr(dataset, 'task', None)
        self.source_names: List[str] = list(dataset.source_names)
        self.source_sizes: List[int] = [len(ds) for ds in dataset.datasets]
        for name, size in zip(self.source_names, self.source_sizes):
            if size == 0:
                raise ValueError(f'Source {name!r} of task {self.task!r} '
                                 'has no samples.')
        self.cumulative_sizes = [0] + list(dataset.cumulative_sizes)
        dist_rank, dist_world_size = get_dist_info()
        self.world_size = (dist_world_size
                           if num_replicas is None else num_replicas)
        self.rank = dist_rank if rank is None else rank
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f'rank {self.rank} of task {self.task!r} is not '
                             f'among the {self.world_size} replicas')
        self.batch_size = batch_size
        self.global_batch_size = batch_size * self.world_size
        self.source_ratio = self.ratio_list(dataset, source_ratio)
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self._plan(source_ratio, self.shares(dataset, source_ratio))
        self._num_batches_to_skip = 0

    @classmethod
    def shares(cls, dataset, source_ratio) -> List[Fraction]:
        """Each source's exact share ``p_s`` of the global batch, in the
        order of ``dataset.source_names``, as ``source_ratio`` gives it."""
        ratio = [Fraction(r) for r in cls.ratio_list(dataset, source_ratio)]
        return [r / sum(ratio) for r in ratio]

    @staticmethod
    def ratio_list(dataset, source_ratio) -> List[float]:
        """``source_ratio`` as a list in the order of the sources, checked."""
        names = dataset.source_names
        if isinstance(source_ratio, str) and source_ratio == 'size':
            ratio = [len(ds) for ds in dataset.datasets]
        elif isinstance(source_ratio, dict):
            unknown = set(source_ratio) - set(names)
            missing = set(names) - set(source_ratio)
            if unknown or missing:
                raise ValueError(
                    f'source_ratio of task {dataset.task!r} must give a '
                    f'ratio for each of its sources {names}; unknown: '
                    f'{sorted(unknown)}, missing: {sorted(missing)}')
            ratio = [source_ratio[name] for name in names]
        elif isinstance(source_ratio, (list, tuple)):
            if len(source_ratio) != len(names):
                raise ValueError(
                    f'source_ratio {list(source_ratio)} of task '
                    f'{dataset.task!r} must have one entry per source '
                    f'{names}')
            ratio = list(source_ratio)
        else:
            raise TypeError("source_ratio must be a list, a dict by source "
                            f"name or 'size', but got {source_ratio!r}")
        if not all(
                isinstance(r, numbers.Real) and math.isfinite(r) and r >= 0
                for r in ratio) or sum(ratio) <= 0:
            raise ValueError(
                f'source_ratio of task {dataset.task!r} must be non-negative '
                f'with a positive sum, but got {dict(zip(names, ratio))}')
        return ratio

    def _plan(self, source_ratio, shares: List[Fraction]) -> None:
        """The per-iteration floors and the thresholds of the remainder's
        systematic sampling for the exact ``shares``; refuses a share below
        one image of the global batch."""
        G = self.global_batch_size
        short = [
            f'source {name!r} a share of {float(share):.3%}, i.e. '
            f'{float(G * share):.3g} images'
            for name, share in zip(self.source_names, shares) if G * share < 1
        ]
        if short:
            raise ValueError(
                f'source_ratio {source_ratio!r} of task {self.task!r} gives '
                f'{"; ".join(short)} of the global batch G = batch_size x '
                f'world size = {self.batch_size} x {self.world_size} = {G}: '
                'a source with less than 1 image per global batch would be '
                'missing from some global batches. Raise its ratio or the '
                'batch size, or drop the source.')
        self._shares = shares
        expected = [G * share for share in shares]
        self._floors = np.array([math.floor(e) for e in expected],
                                dtype=np.int64)
        #: Images of the global batch left after the floors.
        self._remainder = G - int(self._floors.sum())
        # The fractional parts end to end on [0, r), as thresholds in units
        # of the phase: point u + j (u = K / 2**32) lies in source s's
        # interval [F_{s-1}, F_s) iff T_{s-1} <= K + j * 2**32 < T_s.
        cumulative, thresholds = Fraction(0), [0]
        for e, floor in zip(expected, self._floors):
            cumulative += e - int(floor)
            thresholds.append(math.ceil(cumulative * _PHASE_ONE))
        assert thresholds[-1] == self._remainder * _PHASE_ONE
        self._thresholds = np.array(thresholds, dtype=np.int64)
        self._phase0 = _hash(self.seed, -1) % _PHASE_ONE

    # ------------------------------------------------------------ the plan

    def source_counts(self, iterations) -> np.ndarray:
        """The images of each source in the global batches of
        ``iterations``.

        Args:
            iterations (int | array of int): Iteration indices (from 0).

        Returns:
            np.ndarray: ``(len(iterations), num_sources)`` counts (a
            ``(num_sources,)`` row for one int), each row summing to the
            global batch size.
        """
        one = np.ndim(iterations) == 0
        iters = np.atleast_1d(np.asarray(iterations, dtype=np.int64))
        # The phase K_i = (K_0 + i * step) mod 2**32, exact in uint64.
        phase = (iters.astype(np.uint64) * np.uint64(_GOLDEN_STEP) +
                 np.uint64(self._phase0)) & np.uint64(_PHASE_ONE - 1)
        phase = phase.astype(np.int64)
        # Points below each threshold T: #{j < r: K + j * 2**32 < T}.
        below = -((phase[:, None] - self._thresholds[None, :]) // _PHASE_ONE)
        below = np.clip(below, 0, self._remainder)
        counts = self._floors[None, :] + np.diff(below, axis=1)
        return counts[0] if one else counts

    def _offsets(self, iteration: int) -> np.ndarray:
        """Per source, the images of the global batches before
        ``iteration``: where its stream stands."""
        offsets = np.zeros(len(self.source_names), dtype=np.int64)
        for start in range(0, iteration, _CHUNK):
            iters = np.arange(start, min(start + _CHUNK, iteration))
            offsets += self.source_counts(iters).sum(axis=0)
        return offsets

    def source_mix(self) -> List[dict]:
        """The mix of the global batch, per source: ``name``, ``share``
        (``p_s``), ``per_global_batch`` (``G * p_s``, on average; every
        global batch has its floor or ceil), ``per_rank`` (on average) and
        ``size`` (the source's samples)."""
        G = self.global_batch_size
        return [
            dict(
                name=name,
                share=float(share),
                per_global_batch=float(G * share),
                per_rank=float(G * share / self.world_size),
                size=size) for name, share, size in zip(
                    self.source_names, self._shares, self.source_sizes)
        ]

    # ------------------------------------------------------------ sampling

    def fast_forward(self, num_batches: int) -> None:
        """Make the next iterator skip its first ``num_batches`` batches.

        No index is drawn and no data is loaded (the streams' positions are
        computed), so resuming at iteration ``n`` with ``fast_forward(n)``
        continues with the very batches an uninterrupted run would have
        drawn (given the same seed and world size).

        Args:
            num_batches (int): Number of batches to skip.
        """
        if num_batches < 0:
            raise ValueError(f'num_batches must be >= 0, got {num_batches}')
        self._num_batches_to_skip = num_batches

    def _epoch(self, source: int, epoch: int) -> np.ndarray:
        """Epoch ``epoch`` of the stream of ``source``: its order of the
        source's indices."""
        size = self.source_sizes[source]
        if not self.shuffle:
            return np.arange(size)
        generator = torch.Generator()
        generator.manual_seed(_hash(self.seed, source, epoch))
        return torch.randperm(size, generator=generator).numpy()

    def __iter__(self) -> Iterator[int]:
        start, self._num_batches_to_skip = self._num_batches_to_skip, 0
        return self._batches(start)

    def _batches(self, iteration: int) -> Iterator[int]:
        offsets = self._offsets(iteration)
        world_size, rank = self.world_size, self.rank
        # {source: {epoch: order}}, the epochs in use.
        epochs: List[Dict[int, np.ndarray]] = [
            {} for _ in self.source_names
        ]
        while True:
            counts = self.source_counts(iteration)
            ends = np.cumsum(counts)
            # This rank's slots of the global batch, ordered by source.
            slots = np.arange((rank - iteration) % world_size,
                              self.global_batch_size, world_size)
            sources = np.searchsorted(ends, slots, side='right')
            positions = offsets[sources] + slots - (ends - counts)[sources]
            indices = []
            for source in np.unique(sources).tolist():
                pos = positions[sources == source]
                size = self.source_sizes[source]
                cache = epochs[source]
                for epoch in [e for e in cache if e < pos[0] // size]:
                    del cache[epoch]
                for epoch in np.unique(pos // size).tolist():
                    if epoch not in cache:
                        cache[epoch] = self._epoch(source, epoch)
                    order = cache[epoch]
                    in_epoch = pos[pos // size == epoch] % size
                    indices.extend(
                        (order[in_epoch] +
                         self.cumulative_sizes[source]).tolist())
            yield from indices
            offsets += counts
            iteration += 1

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Nothing to do: the sampler is infinite and its streams are set by
        the seed."""


def describe_source_mix(sampler: SourceMixSampler,
                        max_iters: Optional[int] = None,
                        task: Optional[str] = None) -> str:
    """The source mix of ``sampler`` as a small table: per source its share
    of the global batch, its images per global batch and, with
    ``max_iters``, the epochs over it it is trained on in ``max_iters``
    iterations (``max_iters * G * p_s / len(source)``).

    Args:
        sampler (SourceMixSampler): The sampler (or any object with
            ``source_mix()``, ``batch_size`` and ``world_size``).
        max_iters (int, optional): The training iterations.
        task (str, optional): The task named in the title; defaults to the
            sampler's.
    """
    task = getattr(sampler, 'task', None) if task is None else task
    header = ['source', 'share', 'images / global batch', 'per rank',
              'samples']
    if max_iters is not None:
        header.append(f'epochs in {max_iters} iters')
    rows = []
    for source in sampler.source_mix():
        row = [
            source['name'], f"{source['share']:.2%}",
            f"{source['per_global_batch']:.2f}", f"{source['per_rank']:.2f}",
            f"{source['size']:,}"
        ]
        if max_iters is not None:
            epochs = max_iters * source['per_global_batch'] / source['size']
            row.append(f'{epochs:.2f}')
        rows.append(row)
    world_size = sampler.world_size
    title = (f'Source mix of task {task!r}: global batch '
             f'{sampler.batch_size * world_size} = {sampler.batch_size} per '
             f'rank x {world_size} rank(s)')
    return title + '\n' + format_table(header, rows,
                                       right=[False] + [True] *
                                       (len(header) - 1))
