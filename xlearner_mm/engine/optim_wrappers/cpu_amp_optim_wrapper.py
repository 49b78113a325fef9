from contextlib import contextmanager

import torch
from mmcv.ops.nms import NMSop
from mmcv.ops.roi_align import RoIAlignFunction
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast
from torch import nn

from xlearner_mm.registry import OPTIM_WRAPPERS
from xlearner_mm.utils.compat import is_cpu_autocast_enabled


# mmcv ops whose CPU kernels take float32 only ("expected scalar type Float
# but found BFloat16"): the RPN's proposal NMS and the RoI extractor's
# RoIAlign of mmdet's two-stage detectors.
FP32_CPU_OPS = (NMSop, RoIAlignFunction)
# The autograd Functions made to run in float32 so far.
_FP32_FUNCTIONS = set()


def _cast(values, dtype: torch.dtype):
    """Floating tensors of ``values`` (a tensor or a tuple) in ``dtype``."""
    if isinstance(values, tuple):
        return tuple(_cast(v, dtype) for v in values)
    if torch.is_tensor(values) and values.is_floating_point():
        return values.to(dtype)
    return values


def run_in_fp32_under_cpu_autocast(function: type) -> None:
    """Make an autograd Function run in float32 while CPU autocast is on.

    Its floating inputs are cast to float32 and its forward runs with
    autocast off; its floating outputs are cast back to the dtype of its
    first floating input, so that the code around it sees the dtype it would
    with a bfloat16 kernel (mmdet's RoI extractor writes RoIAlign's output
    into a tensor of the features' dtype). The backward gets float32
    gradients; autograd casts what it returns to the inputs' dtypes. Outside
    CPU autocast (e.g. under CUDA float16 autocast) nothing changes.
    Idempotent.

    The class itself is changed, for the whole process: mmdet calls these
    Functions (through mmcv's ``nms`` and ``RoIAlign``) with no way to
    substitute others, and autograd looks the backward up on the class when
    it runs, after the forward's autocast context has ended.
    """
    if function in _FP32_FUNCTIONS:
        return
    forward, backward = function.forward, vars(function).get('backward')

    def fp32_forward(ctx, *args):
        ctx.fp32_from = None
        if not is_cpu_autocast_enabled():
            return forward(ctx, *args)
        ctx.fp32_from = next((a.dtype for a in args if torch.is_tensor(a)
                              and a.is_floating_point()), None)
        with torch.autocast('cpu', enabled=False):
            outputs = forward(ctx, *_cast(args, torch.float32))
        return _cast(outputs, ctx.fp32_from)

    def fp32_backward(ctx, *grads):
        if ctx.fp32_from is not None:
            grads = _cast(grads, torch.float32)
        return backward(ctx, *grads)

    function.forward = staticmethod(fp32_forward)
    if backward is not None:
        function.backward = staticmethod(fp32_backward)
    _FP32_FUNCTIONS.add(function)


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Automatic mixed precision on CPU: bfloat16 autocast, no loss scaling.

    mmengine 0.10.7's ``AmpOptimWrapper`` asserts a GPU (or NPU, MLU, MUSA)
    and always scales the loss with a CUDA ``GradScaler``. On CPU, autocast
    only supports bfloat16, whose exponent range is that of float32, so
    gradients do not underflow and no scaler is needed: this wrapper is
    :class:`OptimWrapper` (plain backward and step, same state dict) with
    the forward under ``torch.autocast('cpu', torch.bfloat16)``.

    The mmcv ops in :data:`FP32_CPU_OPS` have float32-only CPU kernels; the
    wrapper makes them run in float32 under CPU autocast (see
    :func:`run_in_fp32_under_cpu_autocast`), as autocast does for its own
    float32-listed ops, from the first construction of this wrapper on.
    ``tools/train.py --amp`` picks it when no GPU is available.

    Examples:
        >>> optim_wrapper = dict(
        ...     type='CPUAmpOptimWrapper',
        ...     optimizer=dict(type='SGD', lr=0.02, momentum=0.9))

    Args:
        dtype (str | torch.dtype): Autocast dtype; only bfloat16 is
            supported by CPU autocast. Defaults to ``'bfloat16'``.
        **kwargs: Keyword arguments of :class:`OptimWrapper`.
    """

    def __init__(self, dtype='bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None)
        if dtype != torch.bfloat16:
            raise ValueError('CPUAmpOptimWrapper: CPU autocast only supports '
                             f'dtype bfloat16, got {dtype!r}')
        self.cast_dtype = dtype
        for function in FP32_CPU_OPS:
            run_in_fp32_under_cpu_autocast(function)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The parent's context (gradient accumulation without DDP sync)
        with the forward in bfloat16 autocast on CPU."""
        with super().optim_context(model), autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
