"""Refuse an Expansion checkpoint whose tasks or levels are not the model's.

``load_from`` (and ``resume``) load with ``strict=False``: mmengine only
warns about missing and unexpected keys, so an Expansion checkpoint of other
tasks, other levels or other widths would leave the expanded backbone partly
or wholly at its initialisation and train on silently.
"""
from collections import OrderedDict

from mmengine.hooks import Hook
from mmengine.runner import find_latest_checkpoint

from xlearner_mm.models.architectures.xlearner import XLearner
from xlearner_mm.models.utils.checkpoint_state import (checkpoint_mismatches,
                                                       format_mismatches,
                                                       strip_ddp_prefix)
from xlearner_mm.registry import HOOKS
from xlearner_mm.utils import unwrap_model

# The expanded backbone and its reconciliation layers; the task models'
# heads may legitimately differ (other label spaces when fine-tuning).
_EXPANSION_PREFIXES = ('backbone.', 'neck.')


def _expansion_state(state_dict: dict) -> OrderedDict:
    """The expanded backbone's and the neck's entries, without DDP's
    ``module.``."""
    return OrderedDict((key, value)
                       for key, value in strip_ddp_prefix(state_dict).items()
                       if key.startswith(_EXPANSION_PREFIXES))


@HOOKS.register_module()
class CheckpointConsistencyHook(Hook):
    """Before the weights of ``load_from`` / ``resume`` are put into an
    :class:`XLearner` (``after_load_checkpoint`` runs between reading the
    file and loading it into the model), raise ValueError if the
    checkpoint's expanded backbone has other tasks, or its backbone and neck
    other keys or shapes (levels, widths), than the model of the config.
    Models other than :class:`XLearner` are left alone.
    """
    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = unwrap_model(runner.model)
        if not isinstance(model, XLearner):
            return
        # The file Runner.load_or_resume reads (the hook is not told).
        path = runner._load_from or find_latest_checkpoint(runner.work_dir)
        problems = checkpoint_mismatches(
            _expansion_state(model.state_dict()),
            _expansion_state(checkpoint.get('state_dict', checkpoint)),
            model.tasks, path, config='the config (model)')
        if problems:
            raise ValueError(
                f'Checkpoint {path} does not fit the expanded backbone of '
                'the config: its tasks or levels differ:' +
                format_mismatches(problems))
