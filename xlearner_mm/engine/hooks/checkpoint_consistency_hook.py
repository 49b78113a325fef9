"""Refuse a damaged checkpoint, or an Expansion checkpoint whose tasks or
levels are not the model's.

``load_from`` (and ``resume``) load with ``strict=False``: mmengine only
warns about missing and unexpected keys, so an Expansion checkpoint of other
tasks, other levels or other widths would leave the expanded backbone partly
or wholly at its initialisation and train on silently.
"""
import glob
import itertools
import logging
import os.path as osp
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint

from xlearner_mm.models.architectures.xlearner import XLearner
from xlearner_mm.models.utils.checkpoint_state import (checkpoint_mismatches,
                                                       format_mismatches)
from xlearner_mm.registry import HOOKS
from xlearner_mm.structures import TaskLayout
from xlearner_mm.utils.checkpoint_file import (CheckpointFileError,
                                               check_checkpoint_file,
                                               checkpoint_problem)
from xlearner_mm.utils import unwrap_model
from xlearner_mm.utils.compat import (runner_load_from, runner_resumes,
                                      set_runner_load_from)


def newest_intact_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint an automatic resume in ``work_dir`` should read: the
    latest (``last_checkpoint``) when it is intact, else the newest intact
    ``iter_*.pth`` / ``epoch_*.pth`` there, with a warning naming the damaged one; None when there
    is no checkpoint to resume.

    Raises:
        CheckpointFileError: when the work_dir has checkpoints but none is
            intact.
    """
    latest = find_latest_checkpoint(work_dir)
    if latest is None:
        return None
    problem = checkpoint_problem(latest)
    if problem is None:
        return latest
    saved = (glob.glob(osp.join(work_dir, pattern))
             for pattern in ('iter_*.pth', 'epoch_*.pth'))
    candidates = sorted(
        (path for path in itertools.chain.from_iterable(saved)
         if osp.abspath(path) != osp.abspath(latest)),
        key=osp.getmtime, reverse=True)
    intact = next((p for p in candidates if checkpoint_problem(p) is None),
                  None)
    if intact is None:
        raise CheckpointFileError(
            f'--resume (auto): the latest checkpoint {latest!r} of work_dir '
            f'{work_dir!r} (named by its last_checkpoint) is {problem}, and '
            'no other checkpoint there is intact.')
    print_log(
        f'--resume (auto): the latest checkpoint {latest!r} is {problem}; '
        f'resuming from {intact!r}, the newest intact checkpoint of the '
        'work_dir. The damaged file is left in place.',
        logger='current', level=logging.WARNING)
    return intact


@HOOKS.register_module()
class CheckpointConsistencyHook(Hook):
    """Before the Runner reads ``load_from`` / ``--resume``, refuse a
    truncated or corrupt file, naming it and its config key; an automatic
    ``--resume`` whose latest checkpoint is damaged falls back to the newest
    intact checkpoint of the work_dir, with a warning in the log.

    Before the weights of ``load_from`` / ``resume`` are put into an
    :class:`XLearner` (``after_load_checkpoint`` runs between reading the
    file and loading it into the model), raise ValueError if the
    checkpoint's expanded backbone has other tasks, or its backbone and neck
    other keys or shapes (levels, widths), than the model of the config.
    Models other than :class:`XLearner` are left alone.

    Every checkpoint saved gets the model's :class:`TaskLayout` in
    ``meta['task_layout']``.

    Examples:
        It is one of the default hooks of ``configs/_base_/default_runtime.py``:

        .. code-block:: python

            default_hooks = dict(
                checkpoint_check=dict(type='CheckpointConsistencyHook'))
    """
    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        """Refuse a truncated or corrupt ``load_from`` / ``--resume`` file
        before the Runner reads it; an automatic resume whose latest
        checkpoint is damaged resumes from the newest intact one instead
        (the damaged file is kept)."""
        load_from, resume = runner_load_from(runner), runner_resumes(runner)
        if load_from is not None:
            key = '--resume CKPT / load_from' if resume else 'load_from'
            check_checkpoint_file(load_from, key)
        elif resume:
            intact = newest_intact_checkpoint(runner.work_dir)
            if intact is not None:
                set_runner_load_from(runner, intact)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the model's :class:`TaskLayout` in ``meta['task_layout']``:
        the export, the Squeeze Stage and later loads read it from there."""
        layout = getattr(unwrap_model(runner.model), 'layout', None)
        if layout is not None:
            checkpoint.setdefault('meta', {})[
                TaskLayout.META_KEY] = layout.to_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = unwrap_model(runner.model)
        if not isinstance(model, XLearner):
            return
        # The file Runner.load_or_resume reads (the hook is not told).
        path = runner_load_from(runner) or find_latest_checkpoint(
            runner.work_dir)
        saved = TaskLayout.from_meta(checkpoint.get('meta') or {})
        # Sources may differ: fine-tuning on other data keeps the streams.
        problems = saved.differences(
            model.layout, f'checkpoint {path}', 'the config (model)',
            sources=False) if saved else []
        problems = problems or checkpoint_mismatches(
            TaskLayout.expansion_state(model.state_dict()),
            TaskLayout.expansion_state(checkpoint.get('state_dict', checkpoint)),
            model.layout.streams, path, config='the config (model)')
        if problems:
            raise ValueError(
                f'Checkpoint {path} does not fit the expanded backbone of '
                'the config: its tasks or levels differ:' +
                format_mismatches(problems))
