"""Telling a complete checkpoint file from a truncated or corrupt one before
it is loaded, so that the error names the file and the config key it came
from (torch only says "PytorchStreamReader failed reading zip archive")."""
import os.path as osp
import zipfile
from typing import Optional

# What every zip archive, and so every torch.save file since torch 1.6,
# starts with.
_ZIP_MAGIC = b'PK\x03\x04'


class CheckpointFileError(RuntimeError):
    """A checkpoint file that is missing, truncated or corrupt."""


def checkpoint_problem(path: str) -> Optional[str]:
    """Why the local file ``path`` is no complete checkpoint, or None.

    A torch zip archive is complete when its central directory (written
    last) can be read and every member passes its CRC check. Files in
    torch's legacy format are left to their loader.
    """
    if not osp.isfile(path):
        return 'not found'
    with open(path, 'rb') as f:
        if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f'truncated or corrupt ({error})'
    if bad_member is not None:
        return f'corrupt (its member {bad_member} fails its CRC check)'
    return None


def check_checkpoint_file(path: str, key: str) -> None:
    """Raise :class:`CheckpointFileError` naming ``path`` and the config key
    ``key`` it came from when the local file is missing, truncated or
    corrupt. Remote paths (``s3://``, ``https://``, ``open-mmlab://``) are
    left to their loader."""
    if '://' in path:
        return
    problem = checkpoint_problem(path)
    if problem is not None:
        raise CheckpointFileError(
            f'{key}: checkpoint {path!r} is {problem}; it was probably cut '
            'off while being written or copied. Point the key at a complete '
            'checkpoint.')
