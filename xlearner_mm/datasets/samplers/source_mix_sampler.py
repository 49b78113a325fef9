import itertools
from typing import Dict, Iterator, List, Optional, Sized, Union

from mmdet.datasets.samplers import MultiSourceSampler

from xlearner_mm.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class SourceMixSampler(MultiSourceSampler):
    """Infinite sampler that fills every batch of a task with a fixed number
    of samples of each source.

    mmdet's :class:`MultiSourceSampler` with the sources named: the ratio may
    be given per source name or derived from the source sizes, a ratio that
    leaves a source out of the batches is an error (mmdet's sampler would
    loop forever), and :meth:`fast_forward` makes resuming exact. As in
    mmdet, each source has its own endless, seeded shuffle, and in
    distributed training rank ``r`` of ``w`` takes every ``w``-th index from
    the ``r``-th on, so ranks see different samples.

    Examples:
        A sampler draws the batches of one task's dataloader in
        ``train_dataloader``, which maps every task to its own dataloader.
        Here every classification batch of 64 holds 32 ImageNet, 16
        iNat2021 and 16 Places365 images, and every segmentation batch of 8
        holds ADE20K and COCO-Stuff images in proportion to their sizes. The
        multi-task loop gives each sampler its loader's ``batch_size``; a
        different sampler ``batch_size`` is refused, since the loader must
        cut the index stream at the sampler's batches:

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
        ...         batch_size=8,
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

    Args:
        dataset (MultiSourceDataset): The task's dataset; its
            ``source_names`` name the sources.
        batch_size (int): Samples per batch (per rank), the dataloader's
            ``batch_size``.
        source_ratio (list[int | float] | dict[str, int | float] | str):
            Share of each source in a batch: a list in the order of
            ``dataset.source_names``, a dict by source name (every source
            once), or ``'size'`` for shares proportional to the source
            sizes. Defaults to ``'size'``.
        shuffle (bool): Whether to shuffle each source. Defaults to True.
        seed (int, optional): Seed of the shuffles; the same on all ranks.
            If None, a random seed shared by the ranks is drawn.
            Defaults to None.
    """

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 source_ratio: Union[List[float], Dict[str, float],
                                     str] = 'size',
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        if not hasattr(dataset, 'source_names'):
            raise TypeError('SourceMixSampler needs a MultiSourceDataset '
                            f'(with `source_names`), but got {type(dataset)}')
        # A lazily initialised dataset has no `cumulative_sizes` yet.
        dataset.full_init()
        names = dataset.source_names
        ratio = self._ratio_list(dataset, source_ratio)
        super().__init__(
            dataset=dataset,
            batch_size=batch_size,
            source_ratio=ratio,
            shuffle=shuffle,
            seed=seed)
        for name, num, ds in zip(names, self.num_per_source, dataset.datasets):
            # Either would make mmdet's __iter__ loop forever.
            if len(ds) == 0:
                raise ValueError(f'Source {name!r} of task {dataset.task!r} '
                                 'has no samples.')
            if num <= 0:
                raise ValueError(
                    f'source_ratio {source_ratio!r} with batch_size '
                    f'{batch_size} gives {num} samples of source {name!r} of '
                    f'task {dataset.task!r} per batch (per source: '
                    f'{dict(zip(names, self.num_per_source))}); every source '
                    'needs at least 1: raise its ratio or the batch size.')
        self._num_batches_to_skip = 0

    @staticmethod
    def _ratio_list(dataset, source_ratio) -> List[float]:
        """``source_ratio`` as a list in the order of the sources."""
        names = dataset.source_names
        if source_ratio == 'size':
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
        if any(r < 0 for r in ratio) or sum(ratio) <= 0:
            raise ValueError(
                f'source_ratio of task {dataset.task!r} must be non-negative '
                f'with a positive sum, but got {dict(zip(names, ratio))}')
        return ratio

    def fast_forward(self, num_batches: int) -> None:
        """Make the next iterator skip its first ``num_batches`` batches.

        Only indices are drawn, no data is loaded, so resuming at iteration
        ``n`` with ``fast_forward(n)`` continues with the very batches an
        uninterrupted run would have drawn (given the same seed).

        Args:
            num_batches (int): Number of batches to skip.
        """
        if num_batches < 0:
            raise ValueError(f'num_batches must be >= 0, got {num_batches}')
        self._num_batches_to_skip = num_batches

    def __iter__(self) -> Iterator[int]:
        num_indices = self._num_batches_to_skip * self.batch_size
        self._num_batches_to_skip = 0
        # The per-source index streams live on the sampler, so skipping here
        # advances them exactly as drawing the skipped batches would have.
        return itertools.islice(super().__iter__(), num_indices, None)
