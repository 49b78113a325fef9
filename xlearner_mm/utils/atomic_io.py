"""Writing files so that a crash never leaves a half-written one behind."""
import json
import os
import os.path as osp
import tempfile

import torch


def _atomic_write(path: str, mode: str, write) -> None:
    """Call ``write(f)`` on a temporary file in ``path``'s directory (created
    if missing) opened with ``mode``, then rename it over ``path``
    (``os.replace`` is atomic on POSIX): readers see the old file or the new
    one, never a torn one."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        dir=directory, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save(obj, path)``, atomically (see :func:`_atomic_write`).

    Args:
        obj: Anything ``torch.save`` takes.
        path (str): Destination; its directory is created if missing.
    """
    _atomic_write(path, 'wb', lambda f: torch.save(obj, f))


def atomic_json_dump(obj, path: str, **kwargs) -> None:
    """``json.dump(obj, f, **kwargs)`` into ``path``, atomically (see
    :func:`_atomic_write`); its directory is created if missing."""
    _atomic_write(path, 'w', lambda f: json.dump(obj, f, **kwargs))
