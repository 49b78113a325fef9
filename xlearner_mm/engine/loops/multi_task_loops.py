"""Loops that train and evaluate on several tasks at once.

mmengine's loops drive one dataloader. Here ``train_dataloader`` maps every
task to its own dataloader (own batch size, sampler and workers) and
``val_dataloader`` / ``test_dataloader`` map names to dataloaders evaluated one
after another, each by the evaluator of the same name.

The Runner and mmengine's default hooks still read ``loop.dataloader`` (through
``runner.train_dataloader`` etc.) as if it were one DataLoader; the loops give
them a :class:`DataLoaderGroup` there and keep the real dataloaders in
``loop.dataloaders``.
"""
import inspect
import logging
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, IterBasedTrainLoop
from mmengine.runner.amp import autocast
from mmengine.runner.loops import (_InfiniteDataloaderIterator, _parse_losses,
                                   _update_losses)
from mmengine.runner.utils import calc_dynamic_intervals
from torch.utils.data import DataLoader

from xlearner_mm.registry import DATA_SAMPLERS, LOOPS


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
    start at epoch 0 and the train loop sets their epoch itself whenever it
    restarts a dataloader.

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
    diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
    built = {}
    for name, loader in dataloaders.items():
        if isinstance(loader, dict):
            loader = _with_sampler_batch_size(loader, f'{cfg_key}.{name}')
        try:
            built[name] = runner.build_dataloader(
                loader, seed=runner.seed, diff_rank_seed=diff_rank_seed)
        except Exception as error:
            # The re-raise of mmengine's build_from_cfg, naming the loader.
            raise type(error)(f'{cfg_key}["{name}"]: {error}') from error
    return built


@LOOPS.register_module()
class MultiTaskIterBasedTrainLoop(IterBasedTrainLoop):
    """Iteration-based training on several tasks at once.

    Every iteration takes one batch from the dataloader of every task and
    calls ``runner.model.train_step({task: batch, ...}, optim_wrapper)``.
    A task's dataloader that runs out is restarted (with the next epoch for
    its sampler), so finite samplers work, although infinite ones avoid the
    restarts.

    When training is resumed at iteration ``n``, every task's data goes on
    where it stopped: a sampler with ``fast_forward(num_batches)`` (e.g.
    ``SourceMixSampler``) is told to skip ``n`` batches, which loads nothing;
    any other dataloader is advanced by loading ``n`` batches, as mmengine's
    IterBasedTrainLoop does. This happens after the ``before_train`` hooks and
    before the ``before_train_epoch`` hooks, so that a hook restoring random
    states in ``before_train_epoch`` (:class:`RandomStateHook`) overrides the
    random numbers drawn while advancing.

    Validation, ``stop_training`` (EarlyStoppingHook), the hooks and the
    properties are those of :class:`IterBasedTrainLoop`.
    ``runner.train_dataloader`` is a :class:`DataLoaderGroup` whose
    ``len()`` is that of the longest task dataloader (the iterations for every
    task to see all its data); the dataloaders are in ``dataloaders``. Unlike
    IterBasedTrainLoop it leaves ``runner.visualizer.dataset_meta`` alone, as
    no single dataset's metainfo describes a multi-task batch.

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
        self.dataloaders = _build_dataloaders(runner, dataloader,
                                              'train_dataloader')
        for task, loader in self.dataloaders.items():
            dataset_task = getattr(loader.dataset, 'task', task)
            if dataset_task != task:
                raise ValueError(
                    f'train_dataloader["{task}"] holds a dataset of task '
                    f'"{dataset_task}": the keys of `train_dataloader` are '
                    'the task names the model receives.')
        # IterBasedTrainLoop.__init__ builds one dataloader and starts
        # iterating it; the task iterators can only start in `run`, once the
        # resumed iteration is known. So only BaseLoop's init is used.
        BaseLoop.__init__(
            self, runner,
            DataLoaderGroup(self.dataloaders, combine_lengths=max))
        self._max_iters = int(max_iters)
        assert self._max_iters == max_iters, \
            f'`max_iters` should be a integer number, but get {max_iters}'
        self._max_epochs = 1  # for compatibility with EpochBasedTrainLoop
        self._epoch = 0
        self._iter = 0
        self.val_begin = val_begin
        self.val_interval = val_interval
        # This attribute will be updated by `EarlyStoppingHook`
        # when it is enabled.
        self.stop_training = False
        self.dynamic_milestones, self.dynamic_intervals = \
            calc_dynamic_intervals(
                self.val_interval, dynamic_intervals)

    def run(self) -> torch.nn.Module:
        """Launch training."""
        self.runner.call_hook('before_train')
        task_iterators = {
            task: self._start_iterator(task, loader)
            for task, loader in self.dataloaders.items()
        }
        # In iteration-based training loop, we treat the whole training process
        # as a big epoch and execute the corresponding hook.
        self.runner.call_hook('before_train_epoch')
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()

            data_batch = {
                task: next(iterator)
                for task, iterator in task_iterators.items()
            }
            self.run_iter(data_batch)

            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()

        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _start_iterator(self, task: str,
                        loader: DataLoader) -> _InfiniteDataloaderIterator:
        """An endless iterator over ``loader`` whose next batch is the one of
        iteration ``self._iter`` (non-zero when resuming)."""
        if self._iter == 0:
            return _InfiniteDataloaderIterator(loader)
        # With a batch sampler built from config, `loader.sampler` is torch's
        # default SequentialSampler, so this only fast-forwards samplers whose
        # batches are exactly the dataloader's.
        if hasattr(loader.sampler, 'fast_forward'):
            loader.sampler.fast_forward(self._iter)
            return _InfiniteDataloaderIterator(loader)
        print_log(
            f'The sampler of task "{task}" '
            f'({type(loader.sampler).__name__}) has no `fast_forward`: '
            f'loading {self._iter} batches to skip the data that has already '
            'been trained.',
            logger='current',
            level=logging.WARNING)
        iterator = _InfiniteDataloaderIterator(loader)
        for _ in range(self._iter):
            next(iterator)
        return iterator


class _MultiTaskEvalLoop(BaseLoop):
    """Evaluates several named dataloaders, each with its own evaluator.

    ``stage`` ('val' or 'test') selects the hooks (``before_{stage}``,
    ``before_{stage}_epoch``, ``before_{stage}_iter``, ...) and the model
    method (``{stage}_step``) exactly as mmengine's ValLoop / TestLoop call
    them. For every name, in order, every batch of its dataloader is given to
    ``{stage}_step({task: batch})`` (``task`` is the dataset's ``task``
    attribute) and its outputs to the evaluator of that name. The metrics of
    each evaluator (and ``{stage}_loss`` when the model returns losses, as in
    mmengine) are prefixed with ``<name>/`` and merged.

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
        self._losses: dict = dict()

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
            self._losses.clear()
            for data_batch in loader:
                self.run_iter(batch_idx, name, data_batch)
                batch_idx += 1
            name_metrics = self.evaluators[name].evaluate(len(loader.dataset))
            if self._losses:
                name_metrics.update(_parse_losses(self._losses, self.stage))
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

        outputs, self._losses = _update_losses(outputs, self._losses)

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
    """
    stage = 'val'


@LOOPS.register_module()
class MultiTaskTestLoop(_MultiTaskEvalLoop):
    """Test on several named dataloaders, each with its own evaluator
    (``test_dataloader`` and ``test_evaluator`` are dicts with the same names).

    See :class:`_MultiTaskEvalLoop` for the arguments and the behaviour.
    """
    stage = 'test'
