"""Per-task hyper-parameters through ``paramwise_cfg.custom_keys``, checked
against the model's tasks.

mmengine applies a custom key to every parameter whose name contains it as a
substring (the longest matching key wins). A key written for task ``det``,
such as ``'backbone.streams.det'``, therefore also reaches a task ``det2``
added later, which then silently trains at ``det``'s learning rate.
"""
import logging
from typing import Dict, List

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from xlearner_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS
from xlearner_mm.utils import unwrap_model


def custom_key_owners(model, custom_keys: Dict[str, dict]
                      ) -> Dict[str, Dict[str, List[str]]]:
    """``{key: {task: [parameter names]}}``: the task-owned parameters each
    custom key governs, with mmengine's precedence (a parameter takes the
    longest key it contains, and keys of equal length in sorted order).

    Args:
        model: A model with ``task_parameter_names()`` (:class:`XLearner`).
        custom_keys (dict): ``paramwise_cfg.custom_keys``.
    """
    owner = {
        name: task
        for task, names in model.task_parameter_names().items()
        for name in names
    }
    sorted_keys = sorted(sorted(custom_keys), key=len, reverse=True)
    governed: Dict[str, Dict[str, List[str]]] = {k: {} for k in custom_keys}
    for name, _ in model.named_parameters():
        key = next((k for k in sorted_keys if k in name), None)
        if key is not None and name in owner:
            governed[key].setdefault(owner[name], []).append(name)
    return governed


def check_custom_keys(model, custom_keys: Dict[str, dict]) -> None:
    """Refuse a custom key that names a task (one of its dotted parts is a
    task name) but governs parameters of another task; log a warning for a
    key that governs the parameters of several, but not all, tasks.

    Raises:
        ValueError: naming the key, its task and the other tasks reached.
    """
    tasks = list(model.tasks)
    for key, by_task in custom_key_owners(model, custom_keys).items():
        named = [t for t in tasks if t in key.split('.')]
        others = sorted(set(by_task) - set(named))
        if named and others:
            examples = [by_task[t][0] for t in others]
            raise ValueError(
                f'optim_wrapper.paramwise_cfg.custom_keys[{key!r}] is meant '
                f'for task {named[0]!r} but also sets the parameters of task'
                f'(s) {others} (e.g. {examples}): mmengine matches custom '
                'keys as substrings of parameter names. End the key with a '
                f"'.' so that it matches the whole task name "
                f"({key.rstrip('.') + '.'!r}).")
        if len(by_task) > 1 and len(by_task) < len(tasks):
            print_log(
                f'optim_wrapper.paramwise_cfg.custom_keys[{key!r}] sets the '
                f'parameters of tasks {sorted(by_task)} but not of '
                f'{sorted(set(tasks) - set(by_task))}.',
                logger='current',
                level=logging.WARNING)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TaskOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's :class:`DefaultOptimWrapperConstructor`, after
    :func:`check_custom_keys` on a multi-task model (one with
    ``task_parameter_names``; other models are built as by the default).

    The Expansion configs select it (``configs/_base_/schedules/`` and
    ``configs/demo/expansion_demo.py``). Task keys end with ``'.'`` so that
    they match whole task names:

    Examples:
        # configs/xlearner/expansion_r50.py with its base schedule
        # (configs/_base_/schedules/expansion_multistep.py)
        optim_wrapper = dict(
            type='OptimWrapper', constructor='TaskOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.2, momentum=0.9,
                           weight_decay=1e-4),
            paramwise_cfg=dict(custom_keys={
                'backbone.streams.det.': dict(lr_mult=0.1),
                'neck.reconcilers.det.': dict(lr_mult=0.1),
                'task_models.det.': dict(lr_mult=0.1)}))
    """

    def __call__(self, model):
        task_model = unwrap_model(model)
        if hasattr(task_model, 'task_parameter_names'):
            check_custom_keys(task_model,
                              self.paramwise_cfg.get('custom_keys', {}))
        return super().__call__(model)
