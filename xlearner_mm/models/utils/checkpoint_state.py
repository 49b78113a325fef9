"""Reading an Expansion checkpoint's state dict and telling how it differs
from a model: shared by ``ZooPretrained``, ``MultiTaskDistiller`` (its
teacher checkpoint) and ``CheckpointConsistencyHook`` (``load_from`` and
resume)."""
from collections import OrderedDict
from typing import Dict, List, Sequence

from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from xlearner_mm.utils.checkpoint_file import check_checkpoint_file

# Mismatches listed in an error before the rest are counted.
_MAX_LISTED = 10


def strip_ddp_prefix(state_dict: Dict[str, Tensor]) -> OrderedDict:
    """``state_dict`` without the ``module.`` that a DDP-wrapped model puts
    before every key."""
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state_dict.items())


def read_state_dict(path: str, key: str,
                    map_location: str = 'cpu') -> OrderedDict:
    """The state dict of the checkpoint at ``path`` (a path or an URL
    mmengine's ``CheckpointLoader`` reads; a bare state dict too), without
    DDP's ``module.``. A missing, truncated or corrupt local file raises
    :class:`CheckpointFileError` naming ``key``, the config key it came
    from."""
    check_checkpoint_file(path, key)
    checkpoint = CheckpointLoader.load_checkpoint(
        path, map_location=map_location)
    return strip_ddp_prefix(checkpoint.get('state_dict', checkpoint))


def checkpoint_mismatches(expected: Dict[str, Tensor],
                          found: Dict[str, Tensor], tasks: Sequence[str],
                          path: str,
                          config: str = 'the teacher config') -> List[str]:
    """What differs between the model built from ``config`` (``expected``)
    and the state dict of its checkpoint (``found``): the tasks of the
    expanded backbone first, then every key and shape."""
    found_tasks = {
        key.split('.')[2]
        for key in found if key.startswith('backbone.streams.')
    }
    problems = [
        f"task '{task}' is in {config} but not in checkpoint "
        f'{path} (its tasks: {sorted(found_tasks)})'
        for task in tasks if task not in found_tasks
    ] + [
        f"task '{task}' is in checkpoint {path} but not in {config} "
        f'(its tasks: {list(tasks)})'
        for task in sorted(found_tasks - set(tasks))
    ]
    if problems:
        return problems
    for key, value in expected.items():
        if key not in found:
            problems.append(f'{key}: in {config} but not in the checkpoint')
        elif found[key].shape != value.shape:
            problems.append(f'{key}: checkpoint {tuple(found[key].shape)} '
                            f'vs config {tuple(value.shape)}')
    problems += [
        f'{key}: in the checkpoint but not in {config}'
        for key in found if key not in expected
    ]
    return problems


def format_mismatches(problems: List[str]) -> str:
    """The first mismatches, one per indented line, and how many more."""
    more = len(problems) - _MAX_LISTED
    return ('\n  ' + '\n  '.join(problems[:_MAX_LISTED]) +
            (f'\n  ... and {more} more' if more > 0 else ''))
