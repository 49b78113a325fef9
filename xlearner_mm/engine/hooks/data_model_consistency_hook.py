"""Check, before the first iteration, that the data and the model agree.

Without it a mismatch shows late and obscurely: a task with data but no
model fails in the data preprocessor of the first iteration, a task with a
model but no data silently never trains, a source without a head fails when
its first sample arrives, and a head with fewer classes than its source's
dataset fails (or, with more, trains unused logits) deep inside a loss.
"""
from typing import Dict, List, Optional, Tuple

from mmengine.hooks import Hook

from xlearner_mm.models.architectures.xlearner import _HEAD_KEYS
from xlearner_mm.models.heads.multi_source_heads import MultiSourceHeadMixin
from xlearner_mm.registry import HOOKS
from xlearner_mm.utils import unwrap_model

# Sub-heads of a head that hold their own classes (mmdet's RoI heads).
_SUB_HEAD_KEYS = ('bbox_head', 'mask_head')


def _tasks_key(model) -> str:
    """The config key that lists the model's tasks."""
    if hasattr(model, 'task_models'):
        return 'model.task_models'
    return 'model.teacher.task_models'  # MultiTaskDistiller


def _dataset_sources(dataset, task: str) -> Dict[str, dict]:
    """``{source: metainfo}`` of a task's dataset: MultiSourceDataset's
    ``metainfo['sources']``, or the task alone for any other dataset."""
    metainfo = getattr(dataset, 'metainfo', None) or {}
    if isinstance(metainfo.get('sources'), dict):
        return metainfo['sources']
    return {task: metainfo}


def _num_classes(head, key: str) -> List[Tuple[str, int]]:
    """``(config key, num_classes)`` of a head and of its sub-heads."""
    found = []
    if isinstance(getattr(head, 'num_classes', None), int):
        found.append((f'{key}.num_classes', head.num_classes))
    for sub_key in _SUB_HEAD_KEYS:
        sub = getattr(head, sub_key, None)
        if sub is None:
            continue
        if hasattr(sub, '__len__'):  # cascade stages: ModuleList
            for i, stage in enumerate(sub):
                found += _num_classes(stage, f'{key}.{sub_key}[{i}]')
        else:
            found += _num_classes(sub, f'{key}.{sub_key}')
    return found


def task_heads(model, task: str) -> Tuple[Optional[Dict[str, list]], list]:
    """The heads of ``task`` in an :class:`XLearner`.

    Returns:
        tuple: ``({source: [(config key, num_classes)]}`` of the per-source
        heads, or None when the task has no ``MultiSource*Head``, and the
        ``[(config key, num_classes)]`` of its ordinary heads).
    """
    task_model = model.task_models[task]
    per_source, single = None, []
    for key in _HEAD_KEYS:
        head = getattr(task_model, key, None)
        if head is None:
            continue
        cfg_key = f'model.task_models.{task}.{key}'
        if isinstance(head, MultiSourceHeadMixin):
            per_source = per_source or {}
            for source, source_head in head.heads.items():
                per_source.setdefault(source, []).extend(
                    _num_classes(source_head, f'{cfg_key}.heads.{source}'))
        else:
            single += _num_classes(head, cfg_key)
    return per_source, single


def check_data_model_consistency(model, datasets: Dict[str, object],
                                 data_key: str, all_tasks: bool) -> None:
    """Raise ValueError naming the culprit when ``datasets`` and ``model``
    disagree.

    Args:
        model: An :class:`XLearner` (tasks, per-source heads and classes are
            checked) or any model with ``tasks`` (tasks only, e.g.
            :class:`MultiTaskDistiller`).
        datasets (dict): ``{name: dataset}``; a dataset's task is its
            ``task`` attribute, else its name.
        data_key (str): The config key of the dataloaders, for messages,
            e.g. ``'train_dataloader'``.
        all_tasks (bool): Whether the datasets must cover every task and
            every head (training) or may be a subset (evaluation).
    """
    model_tasks = list(model.tasks)
    data_tasks = {
        name: getattr(dataset, 'task', name)
        for name, dataset in datasets.items()
    }
    no_model = sorted({t for t in data_tasks.values()} - set(model_tasks))
    no_data = [t for t in model_tasks if t not in data_tasks.values()]
    if no_model or (all_tasks and no_data):
        problems = [f'task {t!r} has data but no model (no head)'
                    for t in no_model]
        if all_tasks:
            problems += [f'task {t!r} has a model but no dataloader'
                         for t in no_data]
        raise ValueError(
            f'The tasks of {data_key} {sorted(set(data_tasks.values()))} '
            f'and of {_tasks_key(model)} {model_tasks} differ: '
            f'{"; ".join(problems)}.')
    if not hasattr(model, 'task_models'):
        return
    for name, dataset in datasets.items():
        task = data_tasks[name]
        where = f'{data_key}[{name!r}] (task {task!r})'
        sources = _dataset_sources(dataset, task)
        per_source, single = task_heads(model, task)
        if per_source is None:
            if len(sources) > 1:
                raise ValueError(
                    f'{where} has sources {list(sources)} but '
                    f'model.task_models.{task} has one head for all of them;'
                    ' give each source its own head with a MultiSource*Head.')
            heads = {next(iter(sources)): single}
        else:
            no_head = [s for s in sources if s not in per_source]
            no_source = [s for s in per_source if s not in sources]
            if no_head or (all_tasks and no_source):
                problems = [f'source {s!r} has no head' for s in no_head]
                if all_tasks:
                    problems += [f'head {s!r} has no source'
                                 for s in no_source]
                raise ValueError(
                    f'The sources of {where} {list(sources)} and the '
                    f'per-source heads of model.task_models.{task} '
                    f'{list(per_source)} differ: {"; ".join(problems)}.')
            heads = per_source
        for source, metainfo in sources.items():
            classes = metainfo.get('classes')
            if classes is None:
                continue
            for cfg_key, num_classes in heads[source]:
                if num_classes != len(classes):
                    raise ValueError(
                        f'Source {source!r} of task {task!r} has '
                        f'{len(classes)} classes in {where} but its head has '
                        f'{cfg_key}={num_classes}; set {cfg_key}='
                        f'{len(classes)} (dataset classes: '
                        f'{list(classes)}).')


@HOOKS.register_module()
class DataModelConsistencyHook(Hook):
    """Checks that the data and the model agree before anything runs on them
    (:func:`check_data_model_consistency`):

    * ``before_train``: ``train_dataloader`` has exactly the model's tasks,
      each task's sources are exactly those of its per-source heads, and every
      source has as many classes as its head's ``num_classes``; the datasets
      of ``val_dataloader`` are checked the same way, but may cover only
      some of the tasks and sources.
    * ``before_test``: the same for ``test_dataloader``.

    Only multi-task loops (``dataloaders`` by name) and models with ``tasks``
    are checked; anything else is left alone.

    Examples:
        # configs/_base_/default_runtime.py: in default_hooks, so that every
        # config that inherits it keeps the check
        default_hooks = dict(
            data_model_check=dict(type='DataModelConsistencyHook'))
    """
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        self._check(runner, runner.train_loop, 'train_dataloader', True)
        # Runner.train builds the val loop (if any) before before_train.
        self._check(runner, runner.val_loop, 'val_dataloader', False)

    def before_test(self, runner) -> None:
        self._check(runner, runner.test_loop, 'test_dataloader', False)

    @staticmethod
    def _check(runner, loop, data_key: str, all_tasks: bool) -> None:
        model = unwrap_model(runner.model)
        dataloaders = getattr(loop, 'dataloaders', None)
        if not isinstance(dataloaders, dict) or not hasattr(model, 'tasks'):
            return
        check_data_model_consistency(
            model,
            {name: loader.dataset for name, loader in dataloaders.items()},
            data_key, all_tasks)
