"""Everything xlearner_mm needs of torch and mmengine in a form that may
change between versions: nothing else in the package is to read, write
or call a private attribute of torch or mmengine.

* Torch-version switches: the stacks run from torch 2.1 (OpenMMLab's
  prebuilt mmcv 2.1.0 wheels stop there) to the newest torch.
* Private names and behaviours of torch and of the pinned mmengine (0.10.7)
  that have no public counterpart, each in a small function saying why.

Two private methods are overridden, not called, because torch and mmengine
call them by name; they stay in their classes:

* ``CheckpointHook._save_checkpoint_with_step`` in
  :class:`~xlearner_mm.engine.AtomicCheckpointHook`: mmengine removes the
  outdated checkpoint before saving the new one and writes
  ``last_checkpoint`` with a plain ``open``, and offers no hook point
  in between.
* ``nn.Module._apply`` in
  :class:`~xlearner_mm.models.distillers.frozen_teacher.FrozenTeacherMixin`:
  every device and dtype move (``to``, ``cuda``, ``half``, ...) goes through
  it, and a module held outside the module tree is reached only there.

``tests/test_compat.py`` checks every function here and both overrides on
the installed versions, and its failures say what changed and what to fix.
"""
import itertools
from typing import Any, Iterator, List, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

# ---------------------------------------------------------------- torch


def torch_version() -> tuple:
    """``(major, minor)`` of the installed torch."""
    return tuple(int(part) for part in torch.__version__.split('.')[:2])


def is_cpu_autocast_enabled() -> bool:
    """Whether CPU autocast is on (``torch.is_autocast_enabled('cpu')``,
    torch>=2.4; ``torch.is_autocast_cpu_enabled()`` before)."""
    if torch_version() >= (2, 4):
        return torch.is_autocast_enabled('cpu')
    return torch.is_autocast_cpu_enabled()


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast casts to on ``device_type`` (``'cpu'``,
    ``'cuda'``), None where autocast is off there.

    torch>=2.4 asks by device (``torch.is_autocast_enabled(device_type)``,
    ``torch.get_autocast_dtype(device_type)``); before, CPU and CUDA have
    functions of their own (``is_autocast_cpu_enabled`` /
    ``get_autocast_cpu_dtype``, ``is_autocast_enabled()`` /
    ``get_autocast_gpu_dtype``)."""
    if torch_version() >= (2, 4):
        if not torch.is_autocast_enabled(device_type):
            return None
        return torch.get_autocast_dtype(device_type)
    if device_type == 'cpu':
        return (torch.get_autocast_cpu_dtype()
                if torch.is_autocast_cpu_enabled() else None)
    if device_type == 'cuda':
        return (torch.get_autocast_gpu_dtype()
                if torch.is_autocast_enabled() else None)
    return None


def flop_counter():
    """A fresh ``torch.utils.flop_counter.FlopCounterMode`` that prints
    nothing on exit (``display=False``), to enter and exit once.

    Its constructor takes ``display`` from torch 2.1 to 2.14; what differs
    is how it counts: in 2.1 the counter is itself the TorchDispatchMode,
    later it enters one inside, next to a ``ModuleTracker`` of global
    module hooks. Read it through :func:`flop_total` and
    :func:`flop_counts_by_op` only."""
    from torch.utils.flop_counter import FlopCounterMode
    return FlopCounterMode(display=False)


def flop_total(counter) -> int:
    """The FLOPs ``counter`` (:func:`flop_counter`) has counted so far, also
    while it is entered: its ``'Global'`` row (``get_total_flops``)."""
    return int(counter.get_total_flops())


def flop_counts_by_op(counter) -> dict:
    """``{'aten.convolution': flops, ...}``: the ``'Global'`` row of
    ``counter.get_flop_counts()``, whose keys are op overload packets."""
    return {
        str(op): int(flops)
        for op, flops in counter.get_flop_counts().get('Global', {}).items()
    }


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


def module_apply(module: nn.Module, fn, *args, **kwargs) -> nn.Module:
    """``module._apply(fn)``: the private step through which every device
    and dtype move of torch (``to``, ``cuda``, ``half``, ...) reaches the
    parameters and buffers. It is the only way to pass all of those moves on
    to a module held outside the module tree (a frozen teacher) without
    overriding each public method; ``module`` may be ``super()``."""
    return module._apply(fn, *args, **kwargs)


def ddp_remove_autograd_hooks(ddp: DistributedDataParallel) -> None:
    """Detach the reducer of ``ddp`` from the parameters' gradients.

    A DDP wrapper hooks its reducer on every parameter's gradient
    accumulator, and torch has no public way to undo that short of the
    wrapper being freed, which other references to it may prevent. Without
    it, a second wrapper of the same module would reduce next to the
    first."""
    ddp._remove_autograd_hooks()


def ddp_ignore_params_and_buffers(module: nn.Module,
                                  names: List[str]) -> None:
    """Make the next DDP wrapper of ``module`` leave the parameters and
    buffers ``names`` alone (neither reduced nor broadcast); ``[]`` ignores
    none again. DDP's constructor has no argument for it; it reads what
    this private static method stores on the module."""
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        module, names)


# -------------------------------------------------------------- mmengine


def record_init_info(module: nn.Module, info: str) -> None:
    """Record ``info`` as how ``module``'s parameters were initialised, in
    the table mmengine logs after ``init_weights``. mmengine keeps the table
    in the private ``_params_init_info``, set only on modules whose
    ``init_weights`` is running, and its public ``update_init_info`` asserts
    that it is there; outside ``init_weights`` nothing is recorded."""
    from mmengine.model.weight_init import update_init_info
    if hasattr(module, '_params_init_info'):
        update_init_info(module, init_info=info)


def runner_load_from(runner) -> Optional[str]:
    """The checkpoint ``runner.load_or_resume`` will read: ``load_from`` or
    the ``--resume CKPT`` file, None for none or an automatic resume.
    ``runner.cfg`` holds it only for Runners built from a config (a Runner
    built from arguments has an empty ``cfg``), and mmengine has no
    public attribute for it."""
    return runner._load_from


def runner_resumes(runner) -> bool:
    """Whether ``runner.load_or_resume`` resumes (``resume=True``); see
    :func:`runner_load_from` for why the private attribute is read."""
    return runner._resume


def set_runner_load_from(runner, path: str) -> None:
    """Make ``runner.load_or_resume`` read ``path``, which it then resumes
    from when ``resume=True``. mmengine has no public setter; this lets an
    automatic resume skip a damaged latest checkpoint without touching the
    work_dir's files (``last_checkpoint``)."""
    runner._load_from = path


def iterator_for_resume_advance(batches: Iterator,
                                num_batches: int) -> Iterator:
    """``batches`` behind ``num_batches`` placeholders (None) for mmengine's
    resume advance to consume.

    mmengine 0.10.7's ``IterBasedTrainLoop.run`` positions a resumed run's
    data by calling ``next(loop.dataloader_iterator)`` ``loop.iter`` times
    after the ``before_train_epoch`` hooks, discarding what it gets: every
    skipped batch is loaded. It has no argument or hook to skip data
    without loading it. A loop that positions its data itself (a sampler's
    ``fast_forward`` draws indices only) hands it this iterator, so that
    mmengine's advance takes the placeholders and the data is not advanced
    twice.
    """
    return itertools.chain(itertools.repeat(None, num_batches), batches)
