"""Check, before the first iteration, that the data and the model agree.

Without it a mismatch shows late and obscurely: a task with data but no
model fails in the data preprocessor of the first iteration, a task with a
model but no data silently never trains, a source without a head fails when
its first sample arrives, and a head with fewer classes than its source's
dataset fails (or, with more, trains unused logits) deep inside a loss.
"""
from typing import Dict

from mmengine.hooks import Hook

from xlearner_mm.registry import HOOKS
from xlearner_mm.utils import unwrap_model


def _dataset_sources(dataset, task: str) -> Dict[str, dict]:
    """``{source: metainfo}`` of a task's dataset: MultiSourceDataset's
    ``metainfo['sources']``, or the task alone for any other dataset."""
    metainfo = getattr(dataset, 'metainfo', None) or {}
    if isinstance(metainfo.get('sources'), dict):
        return metainfo['sources']
    return {task: metainfo}


def check_data_model_consistency(model, datasets: Dict[str, object],
                                 data_key: str, all_tasks: bool) -> None:
    """Raise ValueError naming the culprit when ``datasets`` and ``model``
    disagree.

    Args:
        model: A model with a :class:`TaskLayout` ``layout``: an
            :class:`XLearner` (tasks, per-source heads and classes are
            checked) or a :class:`MultiTaskDistiller` (tasks only).
        datasets (dict): ``{name: dataset}``; a dataset's task is its
            ``task`` attribute, else its name.
        data_key (str): The config key of the dataloaders, for messages,
            e.g. ``'train_dataloader'``.
        all_tasks (bool): Whether the datasets must cover every task and
            every head (training) or may be a subset (evaluation).
    """
    layout = model.layout
    model_tasks = list(layout.tasks)
    data_tasks = {
        name: getattr(dataset, 'task', name)
        for name, dataset in datasets.items()
    }
    tasks_key = ('model.task_models' if layout.stage == 'expansion' else
                 'model.teacher.task_models')
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
            f'and of {tasks_key} {model_tasks} differ: '
            f'{"; ".join(problems)}.')
    # The Squeeze Stage runs no heads: its data need only cover the tasks
    # (its layout, read from the teacher checkpoint, may name other sources).
    if layout.stage == 'squeeze' or layout.classes is None:
        return
    for name, dataset in datasets.items():
        task = data_tasks[name]
        where = f'{data_key}[{name!r}] (task {task!r})'
        sources = _dataset_sources(dataset, task)
        heads = layout.classes[task]
        if not layout.per_source[task]:
            if len(sources) > 1:
                raise ValueError(
                    f'{where} has sources {list(sources)} but '
                    f'model.task_models.{task} has one head for all of them;'
                    ' give each source its own head with a MultiSource*Head.')
            heads = {next(iter(sources)): heads[task]}
        else:
            no_head = [s for s in sources if s not in heads]
            no_source = [s for s in heads if s not in sources]
            if no_head or (all_tasks and no_source):
                problems = [f'source {s!r} has no head' for s in no_head]
                if all_tasks:
                    problems += [f'head {s!r} has no source'
                                 for s in no_source]
                raise ValueError(
                    f'The sources of {where} {list(sources)} and the '
                    f'per-source heads of model.task_models.{task} '
                    f'{list(heads)} differ: {"; ".join(problems)}.')
        for source, metainfo in sources.items():
            classes = metainfo.get('classes')
            if classes is None:
                continue
            for cfg_key, num_classes in heads[source].items():
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

    Only multi-task loops (``dataloaders`` by name) and models with a
    :class:`TaskLayout` (``layout``) are checked; anything else is left
    alone.

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
        if not isinstance(dataloaders, dict) or not hasattr(model, 'layout'):
            return
        check_data_model_consistency(
            model,
            {name: loader.dataset for name, loader in dataloaders.items()},
            data_key, all_tasks)
