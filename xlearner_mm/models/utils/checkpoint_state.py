"""Telling how an Expansion checkpoint's state dict differs from a model:
shared by ``MultiTaskDistiller`` (its teacher checkpoint) and
``CheckpointConsistencyHook`` (``load_from`` and resume)."""
from typing import Dict, List, Sequence

from torch import Tensor

from xlearner_mm.structures import TaskLayout

# Mismatches listed in an error before the rest are counted.
_MAX_LISTED = 10


def checkpoint_mismatches(expected: Dict[str, Tensor],
                          found: Dict[str, Tensor], streams: Sequence[str],
                          path: str,
                          config: str = 'the teacher config') -> List[str]:
    """What differs between the model built from ``config`` (``expected``,
    whose expanded backbone has ``streams``, :attr:`TaskLayout.streams`)
    and the state dict of its checkpoint (``found``): the streams first
    (named by their tasks, or ``'shared'``), then every key and shape."""
    found_streams = TaskLayout.stream_tasks(found)
    problems = [
        f"task '{stream}' is in {config} but not in checkpoint "
        f'{path} (its tasks: {sorted(found_streams)})'
        for stream in streams if stream not in found_streams
    ] + [
        f"task '{stream}' is in checkpoint {path} but not in {config} "
        f'(its tasks: {list(streams)})'
        for stream in sorted(set(found_streams) - set(streams))
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
