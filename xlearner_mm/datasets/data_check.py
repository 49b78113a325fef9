"""What of a config's training data is on disk, source by source, against
the train sizes the configs state (``tools/check_data.py``).

Each source is counted from what its stock dataset class reads first, without
decoding any image or building the dataset:

- an annotation list (``ann_file`` of a text list, or ImageNet's
  ``meta/<split>.txt``): its non-empty lines;
- a COCO-style json (``ann_file`` ending in ``.json``): its ``"file_name"``
  entries, the images, counted in a stream (Objects365's train json has
  1.7M images and 25M boxes);
- class folders (mmpretrain without annotation list): the image files below
  the data prefix;
- image and label folders (mmseg): the images that have their label map.

The expected sizes are ``MultiSourceDataset(expected_sizes=...)``, which the
recipe configs take from the ``<source>_train_size`` of each
``configs/_base_/datasets`` file.
"""
import inspect
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Optional

from mmengine.config import Config

from xlearner_mm.registry import DATASETS
from xlearner_mm.utils import format_table
from .multi_source_dataset import _local_paths

# Bytes read at a time from a json annotation file.
_CHUNK = 1 << 24
_IMAGE_KEY = b'"file_name"'


class SourceCount(NamedTuple):
    """A source's images on disk against its expected train size."""
    task: str
    source: str
    expected: Optional[int]
    found: Optional[int]
    status: str


def _default(cls, arg: str, fallback=None):
    """``cls.__init__``'s default of ``arg`` (e.g. mmseg's ``img_suffix``)."""
    param = inspect.signature(cls).parameters.get(arg)
    return fallback if param is None else param.default


def _json_images(path: str) -> int:
    """The ``"file_name"`` keys of a COCO-style json, read in chunks (a key
    split between two chunks is found by keeping the previous tail)."""
    count, tail = 0, b''
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            data = tail + chunk
            count += data.count(_IMAGE_KEY)
            tail = data[-(len(_IMAGE_KEY) - 1):]
    return count


def _list_lines(path: str) -> int:
    with open(path, 'rb') as f:
        return sum(1 for line in f if line.strip())


def _files_below(root: str, suffixes) -> List[str]:
    """Paths (relative to ``root``) of the files below it with a suffix in
    ``suffixes``."""
    found = []
    for folder, _, files in os.walk(root, followlinks=True):
        found += [
            osp.relpath(osp.join(folder, name), root) for name in files
            if name.lower().endswith(tuple(suffixes))
        ]
    return found


def count_source(cfg: dict) -> int:
    """The training images of a stock dataset config on disk, from its
    annotation file or folders (module docstring). Paths are those the
    dataset would read (:func:`_local_paths`), so they must exist."""
    cls = DATASETS.get(cfg['type']) if isinstance(cfg['type'], str) \
        else cfg['type']
    paths = dict(_local_paths(cfg))
    ann_file = paths.get('ann_file')
    if ann_file is None and cfg.get('split'):  # mmpretrain.ImageNet
        meta = osp.join(paths['data_root'], 'meta', f'{cfg["split"]}.txt')
        ann_file = meta if osp.isfile(meta) else None
        paths.setdefault('data_prefix',
                         osp.join(paths['data_root'], cfg['split']))
    if ann_file is not None:
        return (_json_images(ann_file) if ann_file.endswith('.json') else
                _list_lines(ann_file))
    if 'data_prefix.img_path' in paths:  # mmseg: images with their labels
        img_suffix = cfg.get('img_suffix', _default(cls, 'img_suffix'))
        seg_suffix = cfg.get('seg_map_suffix', _default(cls, 'seg_map_suffix'))
        labels = set(
            _files_below(paths['data_prefix.seg_map_path'], [seg_suffix]))
        return sum(
            img[:-len(img_suffix)] + seg_suffix in labels
            for img in _files_below(paths['data_prefix.img_path'],
                                    [img_suffix]))
    root = paths.get('data_prefix', paths.get('data_root', ''))
    extensions = cfg.get('extensions') or getattr(
        cls, 'IMG_EXTENSIONS', None) or _default(cls, 'extensions')
    return len(_files_below(root, extensions))


def _status(cfg: dict, expected: Optional[int]) -> tuple:
    """``(found, status)`` of one source."""
    missing = [f'{key} {path!r}' for key, path in _local_paths(cfg)
               if not osp.exists(path)]
    if missing:
        return None, f'MISSING {", ".join(missing)}'
    found = count_source(cfg)
    if expected is None:
        return found, 'no expected size stated'
    if found == expected:
        return found, 'ok'
    gap = expected - found
    return found, (f'SHORT by {gap:,} ({gap / expected:.1%})' if gap > 0 else
                   f'{-gap:,} more than expected')


def check_data(cfg: Config) -> List[SourceCount]:
    """Count every training source of a config against its expected size.

    Args:
        cfg (Config): A config whose ``train_dataloader`` is
            ``{task: dataloader}`` of :class:`MultiSourceDataset` (the
            Expansion and Squeeze configs).

    Returns:
        list[SourceCount]: One per source, in the order of the config. A
        ``status`` starting with ``MISSING`` or ``SHORT`` means data is
        missing.
    """
    loaders = cfg.get('train_dataloader') or {}
    if 'dataset' in loaders or not loaders:
        raise ValueError(
            'train_dataloader must be {task: dataloader} of '
            'MultiSourceDataset (an Expansion or Squeeze config)')
    rows = []
    for task, loader in loaders.items():
        dataset = loader['dataset']
        expected: Dict[str, int] = dataset.get('expected_sizes') or {}
        for source, source_cfg in dataset['sources'].items():
            found, status = _status(source_cfg, expected.get(source))
            rows.append(SourceCount(task, source, expected.get(source), found,
                                    status))
    return rows


def format_data_report(rows: List[SourceCount]) -> str:
    """The counts as a text table, and a last line that sums up."""

    def number(value):
        return '-' if value is None else f'{value:,}'

    table = format_table(
        ('task', 'source', 'expected', 'on disk', 'status'),
        [(r.task, r.source, number(r.expected), number(r.found), r.status)
         for r in rows], right=(False, False, True, True, False))
    bad = [r.source for r in rows if r.status.startswith(('MISSING', 'SHORT'))]
    return table + '\n' + (f'data missing for: {", ".join(bad)}' if bad else
                           'every source has at least its expected size')
