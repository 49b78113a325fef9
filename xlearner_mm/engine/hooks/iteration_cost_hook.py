"""What one training iteration costs: FLOPs (counted, and the ideal work of
the backbones it runs), wall time, peak memory and parameters.

Used by the rehearsal of real-scale configs on synthetic data; it fits
every training config of the project (Expansion, Squeeze, stock models).
"""
import contextlib
import os.path as osp
import resource
import statistics
import time
from typing import Any, Dict, List, Optional

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import Tensor, nn

from xlearner_mm.apis.param_count import numel
from xlearner_mm.models.backbones import ExpandedBackbone
from xlearner_mm.models.distillers import (FrozenTeacherMixin,
                                          MultiTaskDistiller)
from xlearner_mm.registry import HOOKS
from xlearner_mm.utils import atomic_json_dump, unwrap_model
from xlearner_mm.utils.compat import (autocast_dtype, flop_counter,
                                      flop_counts_by_op, flop_total)


def _expanded_streams(prefix: str,
                      backbone: ExpandedBackbone) -> Dict[str, nn.Module]:
    return {f'{prefix}.streams.{name}': stream
            for name, stream in backbone.streams.items()}


def cost_streams(model: nn.Module) -> Dict[str, nn.Module]:
    """The backbones whose calls make up the ideal work of an iteration of
    ``model`` (a DDP or other mmengine wrapper is looked through), by name:

    - a :class:`MultiTaskDistiller` (Squeeze): the streams of its frozen
      teacher's expanded backbone (``teacher.backbone.streams.<name>``; the
      teacher is held outside the module tree) and the ``student``;
    - a model whose ``backbone`` is an :class:`ExpandedBackbone` (an
      :class:`XLearner`, Expansion or Hard-sharing): its streams
      (``backbone.streams.<name>``), and the frozen backbone of each
      X-Learner++ hint teacher (``hints.<task>.teacher.streams.<task>``);
    - any other model with a ``backbone`` (a stock mmdet, mmseg or
      mmpretrain model): ``{'backbone': model.backbone}``;
    - else none.
    """
    model = unwrap_model(model)
    if isinstance(model, MultiTaskDistiller):
        streams = _expanded_streams('teacher.backbone', model.teacher.backbone)
        streams['student'] = model.student
        return streams
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, ExpandedBackbone):
        streams = _expanded_streams('backbone', backbone)
        hints = getattr(model, 'hints', None) or {}
        for task, hint in hints.items():
            streams.update(
                _expanded_streams(f'hints.{task}.teacher', hint.teacher))
        return streams
    if isinstance(backbone, nn.Module):
        return {'backbone': backbone}
    return {}


def held_teachers(model: nn.Module) -> Dict[str, nn.Module]:
    """The frozen teachers of ``model`` held outside its module tree
    (:class:`FrozenTeacherMixin`: the Squeeze teacher ``teacher``, X-Learner++
    hint teachers ``hints.<task>.teacher``), which ``parameters()`` and so
    the parameter counts of the tree do not reach."""
    return {
        f'{name}.teacher' if name else 'teacher': module.teacher
        for name, module in unwrap_model(model).named_modules()
        if isinstance(module, FrozenTeacherMixin)
        and hasattr(module, '_teacher')
    }


def _tensors(value) -> List[Tensor]:
    """The tensors in ``value`` (a tensor, or lists, tuples and dicts of
    them), in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _first_tensor(args: tuple, kwargs: dict) -> Optional[Tensor]:
    found = _tensors(list(args) + list(kwargs.values()))
    return found[0] if found else None


def _dtype_name(dtype: Optional[torch.dtype]) -> Optional[str]:
    return None if dtype is None else str(dtype).replace('torch.', '')


def record_call(name: str, module: nn.Module, x: Tensor) -> Dict[str, Any]:
    """What :func:`stream_flops` needs to repeat one call of ``module`` on
    ``x``, read as it starts: the shape, dtype and device of ``x``, and
    whether the call will be back-propagated (autograd records it and ``x``
    or one of the module's parameters requires a gradient)."""
    params_require_grad = any(p.requires_grad for p in module.parameters())
    grad_enabled = torch.is_grad_enabled()
    return dict(
        stream=name,
        shape=list(x.shape),
        dtype=_dtype_name(x.dtype),
        device=str(x.device),
        grad_enabled=grad_enabled,
        input_requires_grad=x.requires_grad,
        params_require_grad=params_require_grad,
        backward=grad_enabled and (x.requires_grad or params_require_grad),
        training=module.training,
        autocast=_dtype_name(autocast_dtype(x.device.type)))


def _count(module: nn.Module, x: Tensor, backward: bool, params: dict,
           trainable: List[Tensor]) -> tuple:
    """(forward FLOPs, forward + backward FLOPs) of ``module`` on ``x``,
    run with ``params`` (functional_call) or its own tensors (None)."""
    with flop_counter() as counter, torch.set_grad_enabled(backward):
        if params is None:
            outs = module(x)
        else:
            outs = torch.func.functional_call(module, params, (x, ))
        forward = flop_total(counter)
        if backward:
            outs = [t for t in _tensors(outs) if t.requires_grad]
            if outs and trainable:
                loss = sum(t.float().sum() for t in outs)
                torch.autograd.grad(loss, trainable, allow_unused=True)
    return forward, flop_total(counter)


def stream_flops(module: nn.Module, call: Dict[str, Any],
                 on_meta: bool = True) -> Dict[str, Any]:
    """The FLOPs of ``module`` alone on a zero tensor like the recorded
    ``call`` (:func:`record_call`): its forward, and for a back-propagated
    call its forward and the backward to its trainable parameters
    (``torch.autograd.grad``: no ``.grad`` is written).

    The module runs in the training mode it has now (that of the iteration
    the call was recorded in). With ``on_meta`` it runs on PyTorch's
    ``meta`` device (``torch.func.functional_call`` with meta copies of its
    parameters and buffers: no memory, no time, nothing of the module
    changes), where every op has a meta kernel; otherwise, or where that
    fails, on the recorded device under the recorded autocast, with its
    buffers (BN running statistics) restored afterwards.

    Returns:
        dict: ``ideal_forward_flops``, ``ideal_flops`` (forward + backward
        for a back-propagated call) and ``ideal_on`` (``'meta'`` or the
        device).
    """
    shape, dtype = call['shape'], getattr(torch, call['dtype'])
    backward = call['backward']
    if on_meta:
        try:
            params = {
                name: torch.empty_like(p, device='meta').requires_grad_(
                    p.requires_grad)
                for name, p in module.named_parameters()
            }
            trainable = [p for p in params.values() if p.requires_grad]
            params.update({
                name: torch.empty_like(b, device='meta')
                for name, b in module.named_buffers()
            })
            x = torch.zeros(shape, dtype=dtype, device='meta')
            forward, total = _count(module, x, backward, params, trainable)
            return dict(ideal_forward_flops=forward, ideal_flops=total,
                        ideal_on='meta')
        except Exception as error:  # an op without a meta kernel, .item()
            print_log(
                f'IterationCostHook: {call["stream"]} does not run on the '
                f'meta device ({type(error).__name__}: {error}); counting '
                f'its ideal FLOPs on {call["device"]}', 'current')
    device = torch.device(call['device'])
    x = torch.zeros(shape, dtype=dtype, device=device)
    trainable = [p for p in module.parameters() if p.requires_grad]
    cast = call.get('autocast')
    autocast = (torch.autocast(device.type, dtype=getattr(torch, cast))
                if cast else contextlib.nullcontext())
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        with autocast:
            forward, total = _count(module, x, backward, None, trainable)
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
    return dict(ideal_forward_flops=forward, ideal_flops=total,
                ideal_on=str(device))


@HOOKS.register_module()
class IterationCostHook(Hook):
    """Measure what a training iteration costs and write it to
    ``<work_dir>/<out_file>`` (JSON, atomically).

    - FLOPs: iteration ``count_iter`` (0-based ``runner.iter``; the first
      one at or after it in a resumed run) runs inside
      ``torch.utils.flop_counter.FlopCounterMode``, from this hook's
      ``before_train_iter`` to its ``after_train_iter``: forward, backward
      and optimizer step as FlopCounterMode counts them (matrix products,
      convolutions and attention; no elementwise ops), for this process.
    - The ideal FLOPs of that iteration: every call of a backbone of
      :func:`cost_streams` in it is recorded (input shape, dtype, whether it
      is back-propagated: for an :class:`ExpandedBackbone`, the streams of
      other tasks run under ``no_grad``; a frozen teacher never is), and
      counted again after the iteration on the stream alone
      (:func:`stream_flops`): forward only for a call without autograd,
      forward and backward to the parameters for one with. Their sum is
      the work the iteration cannot do without; what it counts beyond is
      heads, necks, reconciliation and losses.
    - Time: the wall seconds of every other iteration between the same two
      hook calls (after a CUDA synchronisation on a GPU), and their median.
    - Peak memory of the process: on a GPU ``torch.cuda.max_memory_allocated``
      read after every iteration (mmengine's logger resets it at each log),
      the maximum of those; on the CPU the peak resident set size
      (``ru_maxrss``) of the process, imports and data loading included.
    - Parameters: of the (unwrapped) model, those that train
      (``requires_grad``), and those of frozen teachers held outside the
      module tree (:func:`held_teachers`), which the first two leave out.

    Each process writes its own file: rank 0 ``<out_file>``, rank r>0
    ``<stem>.rank<r><ext>`` (no collective: a rank that fails leaves the
    others' files). The file is written after the counted iteration and at
    the end of training.

    The priority (55, between ``NORMAL`` and ``BELOW_NORMAL``) runs this
    hook's ``before_train_iter`` after the ``NORMAL`` ones (the
    ReconciliationSwitchHook may re-wrap the model there) and its
    ``after_train_iter`` before the logger, the parameter scheduler and the
    checkpoint hook: what is measured is the model step.

    JSON fields: ``rank``, ``world_size``, ``model`` (class), ``torch``,
    ``device``, ``counted_iter``, ``flops_per_iter``, ``flops_by_op``,
    ``ideal_flops_per_iter``, ``stream_calls`` (list of :func:`record_call`
    dicts with ``ideal_forward_flops``, ``ideal_flops`` and ``ideal_on``),
    ``streams`` (``{name: {type, params}}``), ``timed_iters``,
    ``sec_per_iter``, ``median_sec_per_iter``, ``peak_memory_bytes``,
    ``peak_memory_kind`` (``'cuda_max_allocated'`` or ``'cpu_max_rss'``),
    ``params_total``, ``params_trained``, ``params_held_teachers``
    (``{name: params}``).

    Examples:
        >>> custom_hooks = [dict(type='xlearner_mm.IterationCostHook',
        ...                      count_iter=1)]

    Args:
        count_iter (int): The iteration whose FLOPs are counted (0-based
            ``runner.iter``). Defaults to 1: iteration 0 warms up.
        out_file (str): The file, relative to ``runner.work_dir``.
            Defaults to ``'iteration_cost.json'``.
    """

    priority = 55

    def __init__(self, count_iter: int = 1,
                 out_file: str = 'iteration_cost.json') -> None:
        if count_iter < 0:
            raise ValueError(f'IterationCostHook: count_iter must be >= 0, '
                             f'got {count_iter}')
        self.count_iter = count_iter
        self.out_file = out_file
        self._counter = None
        self._handles = []
        self._counted_iter: Optional[int] = None
        self._counting = False
        self._flops: Optional[int] = None
        self._flops_by_op: Dict[str, int] = {}
        self._calls: List[Dict[str, Any]] = []
        self._streams: Dict[str, Dict[str, Any]] = {}
        self._stream_modules: Dict[str, nn.Module] = {}
        self._start: Optional[float] = None
        self._times: List[float] = []
        self._timed_iters: List[int] = []
        self._cuda_peak = 0

    # ------------------------------------------------------------ the hook

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self._stop_counting()  # left entered by a failed iteration
        self._sync(runner)
        if self._flops is None and runner.iter >= self.count_iter:
            self._start_counting(runner)
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._sync(runner)
        elapsed = time.perf_counter() - self._start
        if self._device(runner).type == 'cuda':
            self._cuda_peak = max(self._cuda_peak,
                                  torch.cuda.max_memory_allocated())
        if not self._counting:
            self._times.append(elapsed)
            self._timed_iters.append(runner.iter)
            return
        counter = self._counter
        self._stop_counting()
        self._flops = flop_total(counter)
        self._flops_by_op = flop_counts_by_op(counter)
        self._count_ideal(runner)
        self._write(runner)

    def after_train(self, runner) -> None:
        self._stop_counting()
        if self._flops is None:
            print_log(
                f'IterationCostHook: training ended at iteration '
                f'{runner.iter} before iteration {self.count_iter} could '
                'be counted; no FLOPs', 'current', level=30)
        self._write(runner)

    # ------------------------------------------------------------ counting

    def _start_counting(self, runner) -> None:
        streams = cost_streams(runner.model)
        if not streams:
            print_log(
                f'IterationCostHook: {type(unwrap_model(runner.model))} has '
                'no backbone; the ideal FLOPs are 0', 'current', level=30)
        self._calls = []
        self._stream_modules = streams
        self._streams = {
            name: dict(type=type(module).__name__, params=numel(module))
            for name, module in streams.items()
        }
        for name, module in streams.items():
            self._handles.append(module.register_forward_pre_hook(
                self._recorder(name), with_kwargs=True))
        self._counted_iter = runner.iter
        self._counter = flop_counter()
        self._counter.__enter__()
        self._counting = True

    def _recorder(self, name: str):
        def record(module, args, kwargs):
            x = _first_tensor(args, kwargs)
            if x is not None:
                self._calls.append(record_call(name, module, x))
        return record

    def _stop_counting(self) -> None:
        if self._counting:
            self._counting = False
            counter, self._counter = self._counter, None
            counter.__exit__(None, None, None)
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _count_ideal(self, runner) -> None:
        """Each recorded call counted alone; equal calls once."""
        done = {}
        for call in self._calls:
            key = (call['stream'], tuple(call['shape']), call['dtype'],
                   call['backward'], call['training'], call['autocast'])
            if key not in done:
                done[key] = stream_flops(
                    self._stream_modules[call['stream']], call)
            call.update(done[key])
        self._stream_modules = {}
        if any(c['ideal_on'] != 'meta' for c in self._calls) and \
                self._device(runner).type == 'cuda':
            # The ideal's own run is no part of any training iteration.
            torch.cuda.reset_peak_memory_stats()

    # --------------------------------------------------------- the report

    @staticmethod
    def _device(runner) -> torch.device:
        param = next(unwrap_model(runner.model).parameters(), None)
        return param.device if param is not None else torch.device('cpu')

    def _sync(self, runner) -> None:
        if self._device(runner).type == 'cuda':
            torch.cuda.synchronize()

    def _peak_memory(self, runner) -> tuple:
        if self._device(runner).type == 'cuda':
            peak = max(self._cuda_peak, torch.cuda.max_memory_allocated())
            return peak, 'cuda_max_allocated'
        # Linux reports kilobytes.
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                'cpu_max_rss')

    def report(self, runner) -> Dict[str, Any]:
        """The fields written to the JSON file (see the class)."""
        rank, world_size = get_dist_info()
        model = unwrap_model(runner.model)
        peak, kind = self._peak_memory(runner)
        ideal = (sum(c['ideal_flops'] for c in self._calls)
                 if self._flops is not None else None)
        return dict(
            rank=rank,
            world_size=world_size,
            model=type(model).__name__,
            torch=torch.__version__,
            device=str(self._device(runner)),
            counted_iter=self._counted_iter,
            flops_per_iter=self._flops,
            flops_by_op=self._flops_by_op,
            ideal_flops_per_iter=ideal,
            stream_calls=self._calls,
            streams=self._streams,
            timed_iters=self._timed_iters,
            sec_per_iter=self._times,
            median_sec_per_iter=(statistics.median(self._times)
                                 if self._times else None),
            peak_memory_bytes=peak,
            peak_memory_kind=kind,
            params_total=numel(model),
            params_trained=sum(p.numel() for p in model.parameters()
                               if p.requires_grad),
            params_held_teachers={
                name: numel(teacher)
                for name, teacher in held_teachers(model).items()
            })

    def out_path(self, runner, rank: Optional[int] = None) -> str:
        """``<work_dir>/<out_file>`` for rank 0, ``<stem>.rank<r><ext>``
        for rank r > 0 (this process's rank by default)."""
        rank = get_dist_info()[0] if rank is None else rank
        path = osp.join(runner.work_dir, self.out_file)
        if rank == 0:
            return path
        stem, ext = osp.splitext(path)
        return f'{stem}.rank{rank}{ext}'

    def _write(self, runner) -> None:
        atomic_json_dump(self.report(runner), self.out_path(runner), indent=2)


__all__ = ['IterationCostHook', 'cost_streams', 'held_teachers',
           'record_call', 'stream_flops']
