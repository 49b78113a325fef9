"""Loops that train and evaluate on several tasks at once.

mmengine's loops drive one dataloader. Here ``train_dataloader`` maps every
task to its own dataloader (own batch size, sampler and workers) and
``val_dataloader`` / ``test_dataloader`` map names to dataloaders evaluated one
after another, each by the evaluator of the same name.

The Runner and mmengine's default hooks still read ``loop.dataloader`` (through
``runner.train_dataloader`` etc.) as if it were one DataLoader; the loops give
them a :class:`DataLoaderGroup` there (for training a
:class:`MultiTaskDataLoader`, which also yields ``{task: batch}``), whose
``dataloaders`` are the real ones.
"""
import inspect
import logging
import time
from typing import (Callable, Dict, Iterable, Iterator, List, Optional,
                    Tuple, Union)

import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, IterBasedTrainLoop
from mmengine.runner.amp import autocast
from torch.utils.data import DataLoader

from xlearner_mm.datasets.samplers.source_mix_sampler import \
    describe_source_mix
from xlearner_mm.registry import DATA_SAMPLERS, LOOPS
from xlearner_mm.utils.compat import iterator_for_resume_advance


class DataLoaderGroup:
    """What mmengine sees as the ``dataloader`` of a loop that has several.

    In mmengine 0.10.7 the Runner and its default hooks use only two things of
    ``runner.train_dataloader`` / ``val_dataloader`` / ``test_dataloader``:

    * ``.dataset.metainfo``: RuntimeInfoHook puts it in the message hub, and
      ``Runner.save_checkpoint`` / ``Runner.resume`` store and compare it. Here
      it is ``{name: metainfo of that dataloader's dataset}``.
    * ``len()``: LoggerHook, LogProcessor and IterTimerHook (progress and ETA)
      and the ``epoch_length`` of parameter schedulers. Each loop says how the
      lengths of its dataloaders combine into it.

    It has no ``sampler``, so DistSamplerSeedHook leaves it alone: the samplers
    start at epoch 0 and :class:`MultiTaskDataLoader` sets their epoch itself
    whenever it restarts a dataloader.

    Args:
        dataloaders (dict[str, DataLoader]): The real dataloaders, by name.
        combine_lengths (callable): Turns the lengths of the dataloaders into
            the length of the group, e.g. ``max`` or ``sum``.
    """

    def __init__(self, dataloaders: Dict[str, DataLoader],
                 combine_lengths: Callable[[Iterable[int]], int]) -> None:
        self.dataloaders = dataloaders
        self.dataset = _DatasetGroup(
            {name: loader.dataset for name, loader in dataloaders.items()})
        self._combine_lengths = combine_lengths

    def __len__(self) -> int:
        # Computed on each call, as mmengine's hooks call len(DataLoader).
        return self._combine_lengths(map(len, self.dataloaders.values()))


class MultiTaskDataLoader(DataLoaderGroup):
    """The task dataloaders of training as one endless iterable of
    ``{task: batch}``, with one batch of every task per item.

    A task's dataloader that runs out is restarted, after its sampler's
    ``set_epoch`` is given the next epoch, as mmengine's
    ``IterBasedTrainLoop`` does with its one dataloader; infinite samplers
    (:class:`SourceMixSampler`, ``InfiniteSampler``) never run out. Its
    ``len()`` is that of the longest task dataloader (the iterations for
    every task to see all its data).

    :meth:`fast_forward` starts the tasks' iterators, at the batch where a
    resumed run goes on.

    Args:
        dataloaders (dict[str, DataLoader]): The dataloaders, by task.
    """

    def __init__(self, dataloaders: Dict[str, DataLoader]) -> None:
        super().__init__(dataloaders, combine_lengths=max)
        self._iterators: Dict[str, Iterator] = {}
        self._epochs = dict.fromkeys(dataloaders, 0)

    def __iter__(self) -> Iterator[dict]:
        while True:
            yield {task: self._next(task) for task in self.dataloaders}

    def fast_forward(self, num_batches: int) -> None:
        """Start every task's iterator so that its next batch is the one
        after ``num_batches`` batches.

        A sampler with ``fast_forward(num_batches)`` (e.g.
        :class:`SourceMixSampler`) is told to skip them, which loads nothing;
        any other dataloader loads them and they are discarded, with a
        warning. With a batch sampler built from config, ``loader.sampler``
        is torch's default SequentialSampler, so only samplers whose batches
        are exactly the dataloader's are fast-forwarded.

        Args:
            num_batches (int): The batches to skip; 0 just starts.
        """
        if self._iterators:
            # A running iterator has drawn (workers prefetch) beyond its
            # last batch, so its sampler cannot skip from there.
            raise RuntimeError('fast_forward() must come before the first '
                               'batch of a MultiTaskDataLoader')
        for task, loader in self.dataloaders.items():
            sampler = getattr(loader, 'sampler', None)
            skips_itself = hasattr(sampler, 'fast_forward')
            if skips_itself:
                sampler.fast_forward(num_batches)
            elif num_batches:
                print_log(
                    f'The sampler of task "{task}" '
                    f'({type(sampler).__name__}) has no `fast_forward`: '
                    f'loading {num_batches} batches to skip the data that '
                    'has already been trained.',
                    logger='current',
                    level=logging.WARNING)
            self._iterators[task] = iter(loader)
            for _ in range(0 if skips_itself else num_batches):
                self._next(task)

    def _next(self, task: str):
        """The next batch of ``task``, restarting its dataloader when it has
        run out."""
        if task not in self._iterators:
            self._iterators[task] = iter(self.dataloaders[task])
        try:
            return next(self._iterators[task])
        except StopIteration:
            self._restart(task)
            return next(self._iterators[task])

    def _restart(self, task: str) -> None:
        """Start the next epoch of the dataloader of ``task``."""
        loader = self.dataloaders[task]
        self._epochs[task] += 1
        print_log(
            f'The dataloader of task "{task}" has run out and restarts with '
            f'epoch {self._epochs[task]}; an infinite sampler (e.g. '
            'SourceMixSampler) avoids the restarts.',
            logger='current',
            level=logging.WARNING)
        # Where mmengine's IterBasedTrainLoop looks for `set_epoch`.
        batch_sampler = getattr(loader, 'batch_sampler', None)
        for sampler in (getattr(loader, 'sampler', None),
                        getattr(batch_sampler, 'sampler', None)):
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(self._epochs[task])
                break
        if getattr(loader, 'num_workers', 0):
            time.sleep(2)  # as mmengine: no worker deadlock at the restart
        self._iterators[task] = iter(loader)


class _DatasetGroup:
    """``DataLoaderGroup.dataset``: the datasets by name and their metainfo."""

    def __init__(self, datasets: dict) -> None:
        self.datasets = datasets

    @property
    def metainfo(self) -> dict:
        return {
            name: getattr(dataset, 'metainfo', None)
            for name, dataset in self.datasets.items()
        }


def _names(cfg) -> Union[list, str]:
    """The names of a dict config, or its type when it is no dict."""
    return sorted(cfg) if isinstance(cfg, dict) else type(cfg).__name__


def _with_sampler_batch_size(loader_cfg: dict, cfg_key: str) -> dict:
    """``loader_cfg`` with the loader's ``batch_size`` given to a sampler
    that draws whole batches itself (one with a ``batch_size`` argument,
    e.g. :class:`SourceMixSampler`), so that one value drives both.

    The sampler fills each batch with a fixed number of samples per source;
    the DataLoader then cuts the index stream into batches of its own size.
    Two different sizes make the cuts fall across the sampler's batches
    (every batch of one source only, and inexact resumes), so a sampler
    ``batch_size`` that differs from the loader's is an error.

    Raises:
        ValueError: naming both config keys when the two sizes differ.
    """
    sampler = loader_cfg.get('sampler')
    if not isinstance(sampler, dict) or 'batch_size' not in loader_cfg:
        return loader_cfg
    sampler_type = sampler.get('type')
    sampler_cls = DATA_SAMPLERS.get(sampler_type) if isinstance(
        sampler_type, str) else sampler_type
    takes_batch_size = sampler_cls is not None and (
        'batch_size' in inspect.signature(sampler_cls).parameters)
    if not takes_batch_size:
        return loader_cfg
    batch_size = loader_cfg['batch_size']
    if sampler.get('batch_size', batch_size) != batch_size:
        raise ValueError(
            f'{cfg_key}.batch_size={batch_size} and '
            f'{cfg_key}.sampler.batch_size={sampler["batch_size"]} differ: '
            f'{sampler_type} composes whole batches of its batch_size, which '
            'the dataloader must cut at the same size. Leave out '
            f'{cfg_key}.sampler.batch_size (it is taken from '
            f'{cfg_key}.batch_size) or set both to the same value.')
    return dict(loader_cfg, sampler=dict(sampler, batch_size=batch_size))


class _DataLoaderBuild(BaseLoop):
    """Builds one dataloader the way every mmengine loop does
    (``BaseLoop.__init__``: with the runner's seed and its
    ``randomness.diff_rank_seed``, which the Runner keeps private); it is
    never run."""

    def run(self) -> None:
        raise NotImplementedError('_DataLoaderBuild only builds a dataloader')


def _build_dataloaders(runner, dataloaders: dict,
                       cfg_key: str) -> Dict[str, DataLoader]:
    """Build every dataloader of ``{name: DataLoader or config}`` as
    :class:`BaseLoop` builds one, so each gets the runner's seed.

    Args:
        runner (Runner): The runner.
        dataloaders (dict): ``{name: DataLoader or dataloader config}``.
        cfg_key (str): The config key the dict comes from, for messages.
    """
    if not isinstance(dataloaders, dict) or not dataloaders:
        raise TypeError(
            f'`{cfg_key}` must be a non-empty dict mapping names to '
            f'dataloader configs, e.g. {cfg_key}=dict(cls=dict('
            f'batch_size=..., dataset=...)), but got '
            f'{type(dataloaders).__name__} '
            f'{dataloaders!r:.200}')
    not_loaders = [
        name for name, loader in dataloaders.items()
        if not isinstance(loader, (dict, DataLoader))
    ]
    if not_loaders:
        raise TypeError(
            f'`{cfg_key}` must map names to dataloader configs (dicts), but '
            f'the values of {not_loaders} are not dicts. A single dataloader '
            f'config must be put under a name: {cfg_key}=dict(<name>=dict('
            'batch_size=..., dataset=...)).')
    built = {}
    for name, loader in dataloaders.items():
        if isinstance(loader, dict):
            loader = _with_sampler_batch_size(loader, f'{cfg_key}.{name}')
        try:
            built[name] = _DataLoaderBuild(runner, loader).dataloader
        except Exception as error:
            # The re-raise of mmengine's build_from_cfg, naming the loader.
            raise type(error)(f'{cfg_key}["{name}"]: {error}') from error
    return built


@LOOPS.register_module()
class MultiTaskIterBasedTrainLoop(IterBasedTrainLoop):
    """Iteration-based training on several tasks at once.

    ``train_dataloader`` maps every task to its own dataloader. Every
    iteration takes one batch of each and calls
    ``runner.model.train_step({task: batch, ...}, optim_wrapper)``; the
    dataloaders are one :class:`MultiTaskDataLoader` (``loop.dataloader``,
    also ``runner.train_dataloader``), whose ``len()`` is that of the longest
    task dataloader. Everything else (validation, ``stop_training``, the
    hooks, the properties, ``runner.visualizer.dataset_meta``, here
    ``{task: metainfo}``) is :class:`IterBasedTrainLoop`'s.

    When training is resumed at iteration ``n``, every task's data goes on
    where it stopped (:meth:`MultiTaskDataLoader.fast_forward`): a sampler
    with ``fast_forward`` (e.g. :class:`SourceMixSampler`) skips ``n``
    batches without loading them; any other dataloader loads and discards
    them. This happens before the ``before_train`` hooks, so that a hook
    restoring random states in ``before_train_epoch``
    (:class:`RandomStateHook`) overrides the random numbers drawn meanwhile.
    When it is built, the loop logs the source mix of every task whose
    sampler has one (:func:`describe_source_mix`).

    Examples:
        The Expansion Stage of ``configs/xlearner/expansion_r50.py``:
        classification on ImageNet and Places365, detection on COCO and
        Objects365, each task with its own batch size and workers. The keys
        of ``train_dataloader`` are the task names the model receives, and
        the dataset of each is that task's :class:`MultiSourceDataset`:

        >>> imagenet = dict(type='mmpretrain.ImageNet',
        ...                 data_root='data/imagenet/', split='train')
        >>> places365 = dict(type='mmpretrain.CustomDataset',
        ...                  data_root='data/places365/',
        ...                  ann_file='meta/train.txt',
        ...                  data_prefix='data_large_standard/')
        >>> coco = dict(type='mmdet.CocoDataset', data_root='data/coco/',
        ...             ann_file='annotations/instances_train2017.json',
        ...             data_prefix=dict(img='train2017/'))
        >>> objects365 = dict(type='mmdet.Objects365V2Dataset',
        ...                   data_root='data/objects365/',
        ...                   ann_file='annotations/zhiyuan_objv2_train.json',
        ...                   data_prefix=dict(img='train/'))
        >>> train_dataloader = dict(
        ...     cls=dict(
        ...         batch_size=64, num_workers=8, persistent_workers=True,
        ...         sampler=dict(type='SourceMixSampler', source_ratio='size'),
        ...         dataset=dict(type='MultiSourceDataset', task='cls',
        ...                      pipeline=cls_train_pipeline,
        ...                      sources=dict(imagenet=imagenet,
        ...                                   places365=places365))),
        ...     det=dict(
        ...         batch_size=2, num_workers=2, persistent_workers=True,
        ...         sampler=dict(type='SourceMixSampler', source_ratio=[1, 1]),
        ...         dataset=dict(type='MultiSourceDataset', task='det',
        ...                      pipeline=det_train_pipeline,
        ...                      sources=dict(coco=coco,
        ...                                   objects365=objects365))))
        >>> train_cfg = dict(type='MultiTaskIterBasedTrainLoop',
        ...                  max_iters=150000, val_interval=10000)

    Args:
        runner (Runner): A reference of runner.
        dataloader (dict): ``{task: DataLoader or dataloader config}``
            (the ``train_dataloader`` config). A dataset with a ``task``
            attribute must have its key as task.
        max_iters (int): Total training iterations.
        val_begin (int): The iteration that begins validating.
            Defaults to 1.
        val_interval (int): Validation interval. Defaults to 1000.
        dynamic_intervals (List[Tuple[int, int]], optional): The
            first element in the tuple is a milestone and the second
            element is a interval. The interval is used after the
            corresponding milestone. Defaults to None.
    """

    def __init__(
            self,
            runner,
            dataloader: Dict[str, Union[DataLoader, Dict]],
            max_iters: int,
            val_begin: int = 1,
            val_interval: int = 1000,
            dynamic_intervals: Optional[List[Tuple[int, int]]] = None) -> None:
        dataloaders = _build_dataloaders(runner, dataloader,
                                         'train_dataloader')
        for task, loader in dataloaders.items():
            dataset_task = getattr(loader.dataset, 'task', task)
            if dataset_task != task:
                raise ValueError(
                    f'train_dataloader["{task}"] holds a dataset of task '
                    f'"{dataset_task}": the keys of `train_dataloader` are '
                    'the task names the model receives.')
        super().__init__(runner, MultiTaskDataLoader(dataloaders), max_iters,
                         val_begin, val_interval, dynamic_intervals)
        # What each task trains on: the shares of its global batch and the
        # epochs of every source over the run.
        for task, loader in dataloaders.items():
            sampler = getattr(loader, 'sampler', None)
            if hasattr(sampler, 'source_mix'):
                print_log(
                    describe_source_mix(sampler, self._max_iters, task),
                    logger='current')

    @property
    def dataloaders(self) -> Dict[str, DataLoader]:
        """The task dataloaders, by task."""
        return self.dataloader.dataloaders

    def run(self) -> torch.nn.Module:
        """Position the data at the current (resumed) iteration, then train
        as :class:`IterBasedTrainLoop` does."""
        self.dataloader.fast_forward(self.iter)
        # IterBasedTrainLoop.run would load `self.iter` batches to skip
        # them again; the placeholders go to it instead.
        self.dataloader_iterator = iterator_for_resume_advance(
            iter(self.dataloader), self.iter)
        return super().run()


class _MultiTaskEvalLoop(BaseLoop):
    """Evaluates several named dataloaders, each with its own evaluator.

    ``stage`` ('val' or 'test') selects the hooks (``before_{stage}``,
    ``before_{stage}_epoch``, ``before_{stage}_iter``, ...) and the model
    method (``{stage}_step``) exactly as mmengine's ValLoop / TestLoop call
    them. For every name, in order, every batch of its dataloader is given to
    ``{stage}_step({task: batch})`` (``task`` is the dataset's ``task``
    attribute) and its outputs to the evaluator of that name. The metrics of
    each evaluator are prefixed with ``<name>/`` and merged. Unlike
    mmengine's loops, it takes no losses from the outputs (no
    :class:`XLearner` returns any when predicting).

    The hooks get ``{task: batch}`` as ``data_batch`` and a ``batch_idx``
    counting over all dataloaders, matching ``len(loop.dataloader)`` (the
    number of batches of all of them). The visualizer's ``dataset_meta`` is
    the metainfo of the dataloader being evaluated.

    Args:
        runner (Runner): A reference of runner.
        dataloader (dict): ``{name: DataLoader or dataloader config}``.
        evaluator (dict): ``{name: Evaluator or evaluator / metric config}``
            with the same names as ``dataloader``.
        fp16 (bool): Whether to run the model under autocast.
            Defaults to False.
    """
    stage: str

    def __init__(self,
                 runner,
                 dataloader: Dict[str, Union[DataLoader, Dict]],
                 evaluator: Dict[str, Union[Evaluator, Dict, List]],
                 fp16: bool = False) -> None:
        dataloader_key = f'{self.stage}_dataloader'
        evaluator_key = f'{self.stage}_evaluator'
        if not (isinstance(dataloader, dict) and isinstance(evaluator, dict)
                and set(dataloader) == set(evaluator)):
            raise ValueError(
                f'`{dataloader_key}` and `{evaluator_key}` must be dicts with '
                f'the same names, but got {dataloader_key} names '
                f'{_names(dataloader)} and {evaluator_key} names '
                f'{_names(evaluator)}.')
        self.dataloaders = _build_dataloaders(runner, dataloader,
                                              dataloader_key)
        super().__init__(
            runner,
            DataLoaderGroup(self.dataloaders, combine_lengths=sum))
        self.tasks = {}
        for name, loader in self.dataloaders.items():
            if not hasattr(loader.dataset, 'task'):
                raise AttributeError(
                    f'{dataloader_key}["{name}"]: its dataset '
                    f'{type(loader.dataset).__name__} has no `task` '
                    'attribute, so the task to evaluate it on is unknown; '
                    'use a MultiSourceDataset with `task`.')
            self.tasks[name] = loader.dataset.task
        self.evaluators = {
            name: runner.build_evaluator(evaluator[name])
            for name in self.dataloaders
        }
        for name, loader in self.dataloaders.items():
            if hasattr(loader.dataset, 'metainfo'):
                self.evaluators[name].dataset_meta = loader.dataset.metainfo
        self.fp16 = fp16

    def run(self) -> dict:
        """Launch the evaluation of every dataloader; returns the merged,
        prefixed metrics."""
        self.runner.call_hook(f'before_{self.stage}')
        self.runner.call_hook(f'before_{self.stage}_epoch')
        self.runner.model.eval()

        metrics = dict()
        batch_idx = 0
        for name, loader in self.dataloaders.items():
            self.runner.visualizer.dataset_meta = getattr(
                loader.dataset, 'metainfo', None)
            for data_batch in loader:
                self.run_iter(batch_idx, name, data_batch)
                batch_idx += 1
            name_metrics = self.evaluators[name].evaluate(len(loader.dataset))
            metrics.update({
                f'{name}/{key}': value
                for key, value in name_metrics.items()
            })

        self.runner.call_hook(f'after_{self.stage}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{self.stage}')
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, name: str, data_batch: dict) -> None:
        """Evaluate one batch of the dataloader ``name``.

        Args:
            idx (int): The index of the batch over all dataloaders.
            name (str): The name of the dataloader and evaluator.
            data_batch (dict): The batch, as the dataloader yields it.
        """
        task_batch = {self.tasks[name]: data_batch}
        self.runner.call_hook(
            f'before_{self.stage}_iter', batch_idx=idx, data_batch=task_batch)
        # outputs should be sequence of BaseDataElement
        with autocast(enabled=self.fp16):
            outputs = getattr(self.runner.model,
                              f'{self.stage}_step')(task_batch)
        self.evaluators[name].process(
            data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            f'after_{self.stage}_iter',
            batch_idx=idx,
            data_batch=task_batch,
            outputs=outputs)


@LOOPS.register_module()
class MultiTaskValLoop(_MultiTaskEvalLoop):
    """Validation on several named dataloaders, each with its own evaluator
    (``val_dataloader`` and ``val_evaluator`` are dicts with the same names).

    See :class:`_MultiTaskEvalLoop` for the arguments and the behaviour.

    Examples:
        One name per validation source; its metrics are reported as
        ``imagenet/accuracy/top1``, ``coco/coco/bbox_mAP``, ...

        >>> val_cfg = dict(type='MultiTaskValLoop')
        >>> val_dataloader = dict(
        ...     imagenet=dict(
        ...         batch_size=64,
        ...         sampler=dict(type='DefaultSampler', shuffle=False),
        ...         dataset=dict(type='MultiSourceDataset', task='cls',
        ...                      pipeline=cls_test_pipeline,
        ...                      sources=dict(imagenet=imagenet_val))),
        ...     coco=dict(
        ...         batch_size=1,
        ...         sampler=dict(type='DefaultSampler', shuffle=False),
        ...         dataset=dict(type='MultiSourceDataset', task='det',
        ...                      pipeline=det_test_pipeline,
        ...                      sources=dict(coco=coco_val))))
        >>> val_evaluator = dict(
        ...     imagenet=dict(type='mmpretrain.Accuracy', topk=(1, 5)),
        ...     coco=dict(type='mmdet.CocoMetric', metric='bbox',
        ...               ann_file='data/coco/annotations/'
        ...               'instances_val2017.json'))
    """
    stage = 'val'


@LOOPS.register_module()
class MultiTaskTestLoop(_MultiTaskEvalLoop):
    """Test on several named dataloaders, each with its own evaluator
    (``test_dataloader`` and ``test_evaluator`` are dicts with the same names).

    See :class:`_MultiTaskEvalLoop` for the arguments and the behaviour.

    Examples:
        The validation sources, tested (see :class:`MultiTaskValLoop`):

        >>> test_cfg = dict(type='MultiTaskTestLoop')
        >>> test_dataloader = val_dataloader
        >>> test_evaluator = val_evaluator
    """
    stage = 'test'
