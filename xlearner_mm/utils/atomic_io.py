"""Writing files so that a crash never leaves a half-written one behind."""
import os
import os.path as osp
import tempfile

import torch


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save(obj, path)`` through a temporary file in the same
    directory, renamed over ``path`` once complete (``os.replace`` is atomic
    on POSIX): readers see the old file or the new one, never a torn one.

    Args:
        obj: Anything ``torch.save`` takes.
        path (str): Destination; its directory is created if missing.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        dir=directory, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
