"""Let ``torch.load(weights_only=True)`` read mmengine checkpoints
(torch>=2.4; see :func:`xlearner_mm.utils.compat.load_checkpoint`).

torch>=2.6 loads with ``weights_only=True`` by default. mmengine 0.10.7 pickles
its :class:`HistoryBuffer` (and the numpy scalars and dtypes inside it) into the
``message_hub`` of every checkpoint, so resuming fails with
``Unsupported global: GLOBAL mmengine.logging.history_buffer.HistoryBuffer``.
Instead of turning ``weights_only`` off (which would let a checkpoint run
arbitrary code), the exact classes mmengine stores are allow-listed.

One more thing blocks safe loading: ``HistoryBuffer.__getstate__`` also
pickles the class-wide table of statistics functions (``min``, ``max``,
``mean``, ...), which pickle writes as ``getattr(HistoryBuffer, 'min')``;
``getattr`` cannot be allow-listed without undoing the safety. The table is
class state that ``__setstate__`` rebuilds anyway (defaults, plus whatever
``register_statistics`` added at import), so it is left out of the pickle.
"""
import numpy as np

from .compat import add_safe_globals


def _numpy_globals():
    """The numpy reconstructors and types a pickled numpy array/scalar refers to."""
    # numpy names the functions that rebuild an array and a scalar in its
    # pickles; asking it (``__reduce__``) avoids importing their module,
    # which numpy 2 made private (``numpy.core`` warns there).
    reconstruct = np.ndarray(0).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    globals_ = [np.ndarray, np.dtype, reconstruct, scalar]
    # ``np.dtype(np.float64)`` pickles as its class, e.g. ``numpy.dtypes.Float64DType``.
    globals_ += [type(np.dtype(t)) for t in (
        np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
        np.uint8, np.bool_)]
    return globals_


def _history_buffer_state(buffer) -> dict:
    """``HistoryBuffer.__getstate__`` without the class-wide functions."""
    state = dict(buffer.__dict__)
    state.pop('statistics_methods', None)
    return state


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list the classes mmengine 0.10.7 writes into checkpoints and
    keep functions out of its pickled ``HistoryBuffer``."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_state
    add_safe_globals([HistoryBuffer, *_numpy_globals()])
