import bisect
import copy
import logging
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.dataset import BaseDataset, ConcatDataset
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from xlearner_mm.registry import DATASETS


def _local_paths(cfg: dict) -> List[Tuple[str, str]]:
    """The local paths a dataset config points at.

    Paths are joined with ``data_root`` the way mmengine's
    :class:`~mmengine.dataset.BaseDataset` joins its ``ann_file`` and
    ``data_prefix`` (an absolute path is kept as is). Remote paths
    (``s3://...``) and configs read through a non-local file backend are
    left out: they cannot be checked with ``os.path``.

    Args:
        cfg (dict): A dataset config with optional ``data_root``,
            ``ann_file``, ``data_prefix`` (str or dict of str) and
            ``backend_args``.

    Returns:
        list[tuple[str, str]]: ``(config key, path)`` pairs, e.g.
        ``('data_prefix.img_path', 'data/ade/images/training')``.
    """
    backend_args = cfg.get('backend_args') or {}
    if backend_args.get('backend', 'local') != 'local':
        return []
    data_root = cfg.get('data_root') or ''
    paths = []
    if data_root:
        paths.append(('data_root', data_root))
    if cfg.get('ann_file'):
        paths.append(('ann_file', osp.join(data_root, cfg['ann_file'])))
    data_prefix = cfg.get('data_prefix') or {}
    if isinstance(data_prefix, str):
        data_prefix = {'': data_prefix}
    for key, prefix in data_prefix.items():
        if isinstance(prefix, str) and prefix:
            name = f'data_prefix.{key}' if key else 'data_prefix'
            paths.append((name, osp.join(data_root, prefix)))
    return [(key, path) for key, path in paths if '://' not in path]


def check_local_paths(cfg: dict, owner: str) -> None:
    """Raise FileNotFoundError naming ``owner`` (the source or dataset) and
    the config key of every local path of the dataset config ``cfg`` that
    does not exist (:func:`_local_paths`)."""
    missing = [
        f'{key} {path!r}' for key, path in _local_paths(cfg)
        if not osp.exists(path)
    ]
    if missing:
        raise FileNotFoundError(
            f'{owner}: missing {", ".join(missing)} (relative paths are '
            f'resolved from {os.getcwd()!r}).')


class AnnotationCounter:
    """Counts, while a detection dataset parses its annotation file, the
    raw annotations of every image (``raw_ann_info``, COCO-style) against
    the instances its ``parse_data_info`` keeps.

    mmdet's ``CocoDataset`` drops an annotation silently when its
    ``category_id`` is not one of the dataset's categories, when its box is
    empty, degenerate or outside the image, or when it is marked ``ignore``.
    The counter wraps the dataset's ``parse_data_info`` until
    :meth:`release`; datasets without ``raw_ann_info`` count nothing.

    Args:
        dataset (BaseDataset): The dataset, before its ``full_init``.
    """

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.parse = dataset.parse_data_info
        self.total = self.valid = self.dropped = self.unknown_category = 0
        # The dataset's categories, read at the first image (mmdet sets
        # ``cat_ids`` before it parses any).
        self._category_ids: Optional[set] = None
        dataset.parse_data_info = self

    def __call__(self, raw_data_info: dict):
        data_info = self.parse(raw_data_info)
        annotations = raw_data_info.get('raw_ann_info')
        if not isinstance(annotations, list) or not isinstance(
                data_info, dict):
            return data_info
        instances = data_info.get('instances', [])
        if self._category_ids is None:
            self._category_ids = set(getattr(self.dataset, 'cat_ids', ()))
        self.total += len(annotations)
        self.dropped += len(annotations) - len(instances)
        self.valid += sum(not i.get('ignore_flag', 0) for i in instances)
        self.unknown_category += sum(
            a.get('category_id') not in self._category_ids
            for a in annotations)
        return data_info

    def release(self) -> None:
        """Give the dataset its own ``parse_data_info`` back."""
        if self.dataset.__dict__.get('parse_data_info') is self:
            del self.dataset.parse_data_info

    def describe(self) -> str:
        """What was dropped, by cause."""
        other = self.dropped - self.unknown_category
        return (f'dropped {self.dropped}: {self.unknown_category} with a '
                "category_id that is not among the dataset's categories, "
                f'{other} with an empty, degenerate, out-of-image or ignored '
                'box')


def label_bounds(dataset) -> Tuple[Optional[int], int]:
    """``(number of classes or None, segmentation ignore index)`` of a
    source dataset, for :func:`check_labels`. Read once per source, not per
    sample: mmengine's ``metainfo`` is a deep copy on every access."""
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    return (len(classes) if classes else None,
            getattr(dataset, 'ignore_index', 255))


def check_labels(data, num_classes: Optional[int],
                 ignore_index: int) -> None:
    """Raise ValueError when a loaded sample's labels are not class indices
    of its source (or its ignore index): a segmentation map value or a
    classification label beyond the source's classes, which the loss would
    otherwise report as a bare ``IndexError``.

    Args:
        data: The sample as the dataset's pipeline returns it.
        num_classes (int, optional): The source's number of classes; None
            checks nothing.
        ignore_index (int): The segmentation ignore index (mmseg's 255 by
            default); classification labels have none.
    """
    sample = data.get('data_samples') if isinstance(data, dict) else None
    if sample is None or num_classes is None:
        return
    for field, ignore in (('gt_sem_seg', ignore_index), ('gt_label', None)):
        labels = getattr(sample, field, None)
        labels = getattr(labels, 'data', labels)
        if labels is None or not hasattr(labels, 'unique'):
            continue
        bad = labels >= num_classes
        if ignore is not None:
            bad &= labels != ignore
        if bad.any():
            values = labels[bad].unique().tolist()
            raise ValueError(
                f'{field} has values {values[:10]}, which are neither class '
                f'indices 0..{num_classes - 1} of the source\'s '
                f'{num_classes} classes' +
                ('' if ignore is None else
                 f' nor its ignore index {ignore} (values as the '
                 'pipeline gives them: reduce_zero_label subtracts 1)'))


@DATASETS.register_module()
class MultiSourceDataset(ConcatDataset):
    """The sources (datasets) of one task, concatenated.

    Each source is a stock dataset of its codebase (``mmpretrain.ImageNet``,
    ``mmdet.CocoDataset``, ``mmseg.ADE20KDataset``...) with its own label
    space. Unlike :class:`mmengine.dataset.ConcatDataset`, the sources may
    have different ``metainfo`` (classes, palettes), and every sample knows
    where it comes from: a packed sample's ``data_samples`` gets the metainfo
    ``task`` and ``source`` so that the model picks the head of its source.

    Global indices run over the sources in the order of ``sources``
    (``cumulative_sizes`` as in :class:`torch.utils.data.ConcatDataset`),
    which :class:`SourceMixSampler` relies on.

    Args:
        task (str): Name of the task, e.g. ``'cls'``, ``'det'``, ``'seg'``.
        sources (dict[str, dict | BaseDataset]): Source name -> dataset config
            (built with ``xlearner_mm.registry.DATASETS``, so types of other
            codebases carry their scope: ``'mmdet.CocoDataset'``) or built
            dataset. Names must be Python identifiers: they key the model's
            heads and prefix the metrics.
        pipeline (list[dict | Callable], optional): Data pipeline given to
            every source config that has no ``pipeline`` key of its own, so
            that the sources of a task share one pipeline. Built datasets are
            left as they are. Defaults to None.
        lazy_init (bool): Whether to defer loading the sources' annotations
            to the first use, as in :class:`mmengine.dataset.ConcatDataset`.
            Defaults to False.
        skip_corrupt (bool): Whether a sample that fails to load (an
            unreadable or corrupt image, a missing file...) is skipped: it
            is replaced by the next loadable sample of the same source (so
            the source mix is kept), a warning names its files, and the
            skips are counted in :attr:`num_skipped` (per process: each
            dataloader worker counts its own). With False, the error names
            the sample's files, source and task. Defaults to False.
        expected_sizes (dict[str, int], optional): ``{source: number of
            training images}`` the source should have, e.g. Table 1's sizes
            that each ``configs/_base_/datasets`` file states
            (``<source>_train_size``). ``tools/check_data.py`` counts what is
            on disk against them; the dataset logs them beside its own
            lengths (which can be smaller: mmdet's ``filter_empty_gt`` drops
            images without boxes). Defaults to None.

    Examples:
        # train_dataloader.cls.dataset of configs/xlearner/expansion_r50.py
        # (two of its three sources; each sample's data_samples.source is
        # 'imagenet' or 'inat2021')
        dataset = dict(
            type='MultiSourceDataset', task='cls',
            pipeline={{_base_.cls_train_pipeline}},
            sources=dict(
                imagenet=dict(type='mmpretrain.ImageNet',
                              data_root='data/imagenet/', split='train'),
                inat2021=dict(type='mmpretrain.CustomDataset',
                              data_root='data/inat2021/',
                              ann_file='meta/train.txt')))
    """

    def __init__(self,
                 task: str,
                 sources: Dict[str, Union[dict, BaseDataset]],
                 pipeline: Optional[Sequence[Union[dict, Callable]]] = None,
                 lazy_init: bool = False,
                 skip_corrupt: bool = False,
                 expected_sizes: Optional[Dict[str, int]] = None) -> None:
        if not isinstance(task, str) or not task:
            raise ValueError(f'task must be a non-empty str, but got {task!r}')
        if not isinstance(sources, dict) or not sources:
            raise ValueError(f'sources of task {task!r} must be a non-empty '
                             f'dict of source name -> dataset, but got '
                             f'{sources!r}')
        for name in sources:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(
                    f'Source name {name!r} of task {task!r} is invalid: '
                    'source names must be Python identifiers because they '
                    'key the model heads and prefix the metrics.')
        self.task = task
        self.source_names: List[str] = list(sources)
        unknown = set(expected_sizes or {}) - set(sources)
        if unknown:
            raise ValueError(
                f'expected_sizes of task {task!r} names {sorted(unknown)}, '
                f'which are not among its sources {list(sources)}')
        self.expected_sizes = dict(expected_sizes or {})
        #: ``{source: AnnotationCounter}`` of the sources built from
        #: configs whose annotations are parsed per image.
        self._annotation_counts: Dict[str, AnnotationCounter] = {}
        self.skip_corrupt = skip_corrupt
        #: ``{source: number of samples skipped}`` (``skip_corrupt``).
        self.num_skipped: Dict[str, int] = {name: 0 for name in sources}

        # Check every source's paths before building any of them: building
        # reads annotations, and the stock classes report a missing folder
        # by an error that names neither the source nor the config key.
        for name, source in sources.items():
            if isinstance(source, dict):
                check_local_paths(
                    source, f'Source {name!r} of task {self.task!r} '
                    f'({source.get("type")})')

        # mmengine's ConcatDataset.__init__ is not called: it requires all
        # sources to share their metainfo, which different label spaces
        # never do. What it sets up is set up here.
        self.datasets = [
            self._build_source(name, source, pipeline)
            for name, source in sources.items()
        ]
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def _build_source(self, name: str, source: Union[dict, BaseDataset],
                      pipeline: Optional[Sequence]) -> BaseDataset:
        """Build one source, injecting the shared pipeline into a config
        without one."""
        if isinstance(source, dict):
            cfg = copy.deepcopy(source)
            if pipeline is not None and 'pipeline' not in cfg:
                cfg['pipeline'] = copy.deepcopy(pipeline)
            source_type = cfg.get('type')
            source_cls = DATASETS.get(source_type) if isinstance(
                source_type, str) else source_type
            # Annotations are parsed in full_init, where they are counted.
            counted = hasattr(source_cls, 'parse_data_info')
            if counted:
                cfg['lazy_init'] = True
            try:
                source = DATASETS.build(cfg)
            except Exception as e:
                # The same re-raise as mmengine's build_from_cfg, which adds
                # the class name; the source name is added here.
                raise type(e)(f'Source {name!r} of task {self.task!r}: '
                              f'{e}') from e
            if counted:
                self._annotation_counts[name] = AnnotationCounter(source)
        # Duck typing admits the dataset wrappers (RepeatDataset,
        # ClassBalancedDataset), which are not BaseDataset subclasses.
        if not (hasattr(source, 'full_init') and hasattr(source, 'metainfo')):
            raise TypeError(
                f'Source {name!r} of task {self.task!r} must be a dataset '
                f'config or a dataset with `full_init` and `metainfo` (an '
                f'mmengine BaseDataset), but got {type(source)}')
        return source

    def full_init(self) -> None:
        """Load every source's annotations (once), reporting what the stock
        parsers dropped (:meth:`check_annotations`). A source that fails to
        initialise because none of its annotations was valid (e.g. mmengine
        cannot serialise an empty data list) fails with that reason."""
        if self._fully_initialized:
            return
        for name, dataset in zip(self.source_names, self.datasets):
            try:
                dataset.full_init()
            finally:
                self.check_annotations(name)
        super().full_init()
        self._label_bounds = [label_bounds(d) for d in self.datasets]
        for name, dataset in zip(self.source_names, self.datasets):
            if name in self.expected_sizes:
                print_log(
                    f'Source {name!r} of task {self.task!r}: {len(dataset):,} '
                    f'samples; stated train size '
                    f'{self.expected_sizes[name]:,} (tools/check_data.py '
                    'counts the files on disk against it)', logger='current')

    @property
    def annotation_counts(self) -> Dict[str, dict]:
        """``{source: dict(total, valid, dropped, unknown_category)}``: the
        annotations of each COCO-style source as its parser counted them
        (after :meth:`full_init`)."""
        return {
            name: dict(total=c.total, valid=c.valid, dropped=c.dropped,
                       unknown_category=c.unknown_category)
            for name, c in self._annotation_counts.items()
        }

    def check_annotations(self, name: str) -> None:
        """Log the annotations that the parser of source ``name`` dropped
        (COCO-style detection data: an unknown ``category_id``, or an
        empty, degenerate or ignored box), and fail when the source has
        annotations but none valid, which would otherwise train as
        background only.

        Raises:
            ValueError: naming the source, the task and the annotation file.
        """
        counter = self._annotation_counts.get(name)
        if counter is None:
            return
        counter.release()
        dataset = self.datasets[self.source_names.index(name)]
        where = (f'Source {name!r} of task {self.task!r} '
                 f'({getattr(dataset, "ann_file", "")!r})')
        if counter.total == 0:
            return
        if counter.valid == 0:
            raise ValueError(
                f'{where}: none of its {counter.total} annotations is '
                f'valid: {counter.describe()}. Check the category_ids '
                "against the dataset's classes "
                f'{list(dataset.metainfo.get("classes", ()))[:10]} and '
                'the boxes ([x, y, width, height], width and height '
                '>= 1, inside the image).')
        level = logging.WARNING if counter.dropped else logging.INFO
        print_log(
            f'{where}: {counter.valid} valid annotations of '
            f'{counter.total}; {counter.describe()}.',
            logger='current', level=level)

    @property
    def metainfo(self) -> dict:
        """dict: ``task``, ``sources`` (source name -> that source's metainfo)
        and, for a single source, that source's metainfo at the top level too,
        so that stock metrics find its ``classes``."""
        sources = {
            name: copy.deepcopy(dataset.metainfo)
            for name, dataset in zip(self.source_names, self.datasets)
        }
        metainfo = dict(task=self.task, sources=sources)
        if len(sources) == 1:
            metainfo = {
                **copy.deepcopy(sources[self.source_names[0]]),
                **metainfo
            }
        return metainfo

    def __getitem__(self, idx: int) -> dict:
        """Get the ``idx``-th sample, tagged with its task and source.

        Args:
            idx (int): Global index, in ``[-len(self), len(self))``.

        Returns:
            dict: The sample as the source's pipeline returns it. When it has
            ``data_samples`` (a :obj:`BaseDataElement`), their metainfo gets
            ``task`` (str) and ``source`` (str).
        """
        # full_init is a no-op once done; mmengine's ConcatDataset warns about
        # lazy_init here, which is what a lazy dataset is for.
        self.full_init()
        if not -len(self) <= idx < len(self):
            raise IndexError(f'Index {idx} out of range for the {len(self)} '
                             f'samples of task {self.task!r}')
        # torch's ConcatDataset lookup, on its public cumulative sizes.
        idx %= len(self)
        source_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        sample_idx = idx - ([0] + self.cumulative_sizes)[source_idx]
        name = self.source_names[source_idx]
        data = self._load(source_idx, sample_idx)
        if isinstance(data, dict) and isinstance(
                data.get('data_samples'), BaseDataElement):
            data['data_samples'].set_metainfo(
                dict(task=self.task, source=name))
        return data

    def _files_of(self, source_idx: int, sample_idx: int) -> str:
        """The files a sample reads (its data info's ``*_path`` entries),
        for messages."""
        try:
            info = self.datasets[source_idx].get_data_info(sample_idx)
        except Exception:  # a wrapper without get_data_info, or a bad index
            return 'unknown files'
        paths = [
            f'{key}={value!r}' for key, value in info.items()
            if key.endswith('_path') and isinstance(value, str)
        ]
        return ', '.join(paths) or 'no file paths in its data info'

    def _load(self, source_idx: int, sample_idx: int):
        """Sample ``sample_idx`` of source ``source_idx`` through its
        pipeline; see ``skip_corrupt``."""
        name = self.source_names[source_idx]
        dataset = self.datasets[source_idx]
        for attempt in range(len(dataset)):
            idx = (sample_idx + attempt) % len(dataset)
            try:
                data = dataset[idx]
                check_labels(data, *self._label_bounds[source_idx])
                return data
            except Exception as e:
                message = (f'sample {idx} of source {name!r} of task '
                           f'{self.task!r} ({self._files_of(source_idx, idx)})'
                           f': {type(e).__name__}: {e}')
                if not self.skip_corrupt:
                    raise RuntimeError(f'Failed to load {message}') from e
                self.num_skipped[name] += 1
                print_log(
                    f'Skipped {message} ({self.num_skipped[name]} samples '
                    f'of source {name!r} skipped so far in this process)',
                    logger='current',
                    level=logging.WARNING)
        raise RuntimeError(f'No sample of source {name!r} of task '
                           f'{self.task!r} could be loaded (skip_corrupt)')
