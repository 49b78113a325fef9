"""Writing files so that a crash never leaves a half-written one behind."""
import json
import os
import os.path as osp
import tempfile

import torch


# Temporary files are named ``.<final name>.<random>.tmp`` next to the
# final file; :func:`atomic_tmp_pattern` matches them.
TMP_SUFFIX = '.tmp'


def atomic_tmp_pattern(path: str) -> str:
    """The glob pattern of the temporary files :func:`_atomic_write` uses
    for ``path`` (left behind only if the process was killed mid-write)."""
    return osp.join(
        osp.dirname(osp.abspath(path)), f'.{osp.basename(path)}.*{TMP_SUFFIX}')


def _default_file_mode() -> int:
    """The mode ``open(path, 'w')`` gives a new file: 0o666 less the umask
    (``mkstemp`` creates 0o600 files, which other users could not read)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(path: str, mode: str, write) -> None:
    """Call ``write(f)`` on a temporary file in ``path``'s directory (created
    if missing) opened with ``mode``, then rename it over ``path``
    (``os.replace`` is atomic on POSIX): readers see the old file or the new
    one, never a torn one. The file gets the permissions ``open`` would give
    it."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        dir=directory, prefix=f'.{osp.basename(path)}.', suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), _default_file_mode())
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


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`_atomic_write`)."""
    _atomic_write(path, 'wb', lambda f: f.write(data))


def atomic_write_text(text: str, path: str, encoding: str = 'utf-8') -> None:
    """Write ``text`` to ``path`` atomically (see :func:`_atomic_write`)."""
    _atomic_write(path, 'wb', lambda f: f.write(text.encode(encoding)))
