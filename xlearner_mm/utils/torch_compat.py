"""The torch APIs whose form differs between the stacks xlearner_mm runs on:
torch 2.1 (OpenMMLab's prebuilt mmcv 2.1.0 wheels stop there) through the
newest torch. Everything that depends on the torch version is decided here.
"""
from typing import Any, List

import torch


def torch_version() -> tuple:
    """``(major, minor)`` of the installed torch."""
    return tuple(int(part) for part in torch.__version__.split('.')[:2])


def is_cpu_autocast_enabled() -> bool:
    """Whether CPU autocast is on (``torch.is_autocast_enabled('cpu')``,
    torch>=2.4; ``torch.is_autocast_cpu_enabled()`` before)."""
    if torch_version() >= (2, 4):
        return torch.is_autocast_enabled('cpu')
    return torch.is_autocast_cpu_enabled()


def has_safe_globals() -> bool:
    """Whether ``torch.load(weights_only=True)`` takes an allow-list of
    classes (``torch.serialization.add_safe_globals``, torch>=2.4)."""
    return hasattr(torch.serialization, 'add_safe_globals')


def add_safe_globals(classes: List[Any]) -> None:
    """Allow-list ``classes`` for ``torch.load(weights_only=True)`` where
    torch has such a list; a no-op before torch 2.4 (see
    :func:`load_checkpoint`)."""
    if has_safe_globals():
        torch.serialization.add_safe_globals(classes)


def load_checkpoint(path: str, map_location: str = 'cpu') -> Any:
    """``torch.load`` of a checkpoint the way the installed torch reads it
    safely.

    torch>=2.4 reads mmengine checkpoints with ``weights_only=True`` and the
    allow-list of :func:`add_safe_globals` (set when ``xlearner_mm`` is
    imported): no code in the file runs. torch<2.4 cannot allow-list
    classes, and its ``weights_only=True`` refuses the ``HistoryBuffer``
    every mmengine checkpoint holds; there the file is unpickled in full,
    as mmengine's own ``load_checkpoint`` and ``--resume`` do with that
    torch, so only trusted checkpoints should be loaded (README,
    "Installing on a GPU machine").
    """
    return torch.load(
        path, map_location=map_location, weights_only=has_safe_globals())
