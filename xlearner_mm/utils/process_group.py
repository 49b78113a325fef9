"""Ending a distributed run so that the process exits cleanly."""
import contextlib
import gc
import sys
import traceback

import torch.distributed as dist


@contextlib.contextmanager
def releasing_process_group():
    """Free the run's objects and destroy the process group while the
    interpreter is fully alive, however the run ends.

    Gloo's worker threads drop their last collective's tensors after the
    collective has completed. A tensor made in Python needs the GIL to be
    freed, and a finalizing interpreter answers a thread that asks for the
    GIL with ``pthread_exit``, which aborts a C++ thread ("terminate called
    without an active exception", SIGABRT) after a run that finished. Taking
    the process group down here is not enough by itself: the Runner sits in
    reference cycles (its loops and hooks point back at it), so its DDP
    wrapper, whose reducer holds the process group, would only be freed by
    the collection that runs during finalization. Hence the collection first,
    then ``destroy_process_group``, whose destructor waits for the worker
    threads, releasing the GIL meanwhile. On an error, the traceback's
    frames are cleared of their locals (the Runner among them); the
    traceback itself is still printed.

    Examples:
        >>> with releasing_process_group():
        ...     main()  # builds a Runner and trains
    """
    try:
        yield
    finally:
        error = sys.exc_info()[1]
        if error is not None:
            traceback.clear_frames(error.__traceback__)
        gc.collect()
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
