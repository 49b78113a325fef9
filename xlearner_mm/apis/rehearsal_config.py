"""A training config as its rehearsal runs it: the same model, sampler,
losses, optimizer, hooks and schedule, for a few iterations, on synthetic
data of every source's declared size and classes (:class:`SyntheticSource`)
at the config's image sizes times a scale."""
import copy
import os
import os.path as osp
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.dist import get_world_size

from xlearner_mm.registry import DATASETS, MODELS

#: Transform arguments that are image sizes in pixels, scaled by the
#: rehearsal's ``img_scale`` (mmpretrain's RandomResizedCrop ``scale`` is
#: its output size; mmdet/mmseg Resize ``scale``, RandomCrop ``crop_size``,
#: RandomChoiceResize ``scales``, Pad / data preprocessor ``size``).
SIZE_KEYS = ('scale', 'scales', 'crop_size', 'size', 'img_scale')
#: The packing transform of each codebase names the kind of its samples.
PACK_KINDS = {
    'PackInputs': 'cls',
    'PackClsInputs': 'cls',
    'PackDetInputs': 'det',
    'PackSegInputs': 'seg',
}
#: Where a scaled size stops shrinking: the stride of a ResNet's last level.
MIN_SIZE = 32
#: Samples of a downstream (stock, single-source) training set, which
#: declares no size.
DOWNSTREAM_SIZE = 16551  # VOC07+12 trainval
CHECKPOINT_INITS = ('Pretrained', 'ZooPretrained')


def _bare(type_name) -> str:
    return type_name.split('.')[-1] if isinstance(type_name, str) else ''


def scale_sizes(value, scale: float):
    """A pixel size (int, or nested tuples/lists of ints) times ``scale``,
    rounded, at least :data:`MIN_SIZE`."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return max(MIN_SIZE, int(round(value * scale)))
    if isinstance(value, (tuple, list)):
        return type(value)(scale_sizes(v, scale) for v in value)
    return value


def strip_loading(pipeline: List[dict], scale: float) -> List[dict]:
    """The transforms after loading (every ``Load*`` transform is dropped:
    :class:`SyntheticSource` makes what they make), with their sizes scaled."""
    kept = []
    for transform in pipeline:
        if _bare(transform.get('type')).startswith('Load'):
            continue
        transform = copy.deepcopy(transform)
        for key in SIZE_KEYS:
            if key in transform:
                transform[key] = scale_sizes(transform[key], scale)
        kept.append(transform)
    return kept


def pipeline_kind(pipeline: List[dict], where: str) -> str:
    """``'cls'``, ``'det'`` or ``'seg'``: what the pipeline packs."""
    for transform in pipeline:
        kind = PACK_KINDS.get(_bare(transform.get('type')))
        if kind:
            return kind
    raise ValueError(f'{where}: its pipeline has none of the packing '
                     f'transforms {sorted(PACK_KINDS)}, so the kind of its '
                     'samples is unknown')


def image_shape(pipeline: List[dict]) -> Tuple[int, int]:
    """(height, width) of the synthetic images of a (scaled) pipeline: the
    first size it resizes or crops to; a (long, short) pair gives an image of
    that short side and at most twice as wide."""
    for transform in pipeline:
        for key in SIZE_KEYS:
            size = transform.get(key)
            if size is None:
                continue
            if isinstance(size, int):
                return size, size
            if isinstance(size, (list, tuple)) and size and isinstance(
                    size[0], (list, tuple)):
                size = max(size, key=lambda s: s[0] * s[1])
            short, long = min(size), max(size)
            return short, min(long, 2 * short)
    return 224, 224


def _dataset_class(type_name, scopes):
    for name in [type_name] + [f'{s}.{type_name}' for s in scopes if s]:
        try:
            cls = DATASETS.get(name)
        except Exception:  # an unknown scope
            cls = None
        if cls is not None:
            return cls
    return None


def _classes_of(dataset: dict, scopes) -> Optional[tuple]:
    """The class names a stock dataset config states (its class's
    ``METAINFO`` or its own ``metainfo``), looking inside wrappers."""
    metainfo = dataset.get('metainfo') or {}
    if metainfo.get('classes'):
        return tuple(metainfo['classes'])
    cls = _dataset_class(dataset.get('type'), scopes)
    classes = getattr(cls, 'METAINFO', {}).get('classes')
    if classes:
        return tuple(classes)
    for key in ('dataset', 'datasets'):
        inner = dataset.get(key)
        for d in (inner if isinstance(inner, list) else [inner]):
            if isinstance(d, dict):
                found = _classes_of(d, scopes)
                if found:
                    return found
    return None


def _pipeline_of(dataset: dict) -> Optional[list]:
    if dataset.get('pipeline') is not None:
        return list(dataset['pipeline'])
    for key in ('dataset', 'datasets'):
        inner = dataset.get(key)
        for d in (inner if isinstance(inner, list) else [inner]):
            if isinstance(d, dict) and _pipeline_of(d) is not None:
                return _pipeline_of(d)
    return None


def synthetic_source(cfg: Config, name: str, source: dict, size: int,
                     pipeline: list, scale: float, where: str,
                     num_classes: Optional[int] = None) -> dict:
    """The :class:`SyntheticSource` config standing in for ``source``.

    The classes come from the config's ``<name>_num_classes`` (what the
    recipe's data file states), else from the stock dataset class.
    """
    scopes = [cfg.get('default_scope'), 'mmpretrain', 'mmdet', 'mmseg']
    classes = _classes_of(source, scopes)
    stated = cfg.get(f'{name}_num_classes', num_classes)
    if stated is None and classes is None:
        raise KeyError(
            f'{where}: the classes of source {name!r} ({source.get("type")}) '
            f'are unknown; state them as `{name}_num_classes` in the config')
    num = int(stated if stated is not None else len(classes))
    steps = strip_loading(pipeline, scale)
    return dict(
        type='xlearner_mm.SyntheticSource',
        kind=pipeline_kind(steps, where),
        size=int(size),
        num_classes=num,
        classes=list(classes) if classes and len(classes) == num else None,
        img_shape=image_shape(steps),
        ignore_index=source.get('ignore_index', 255),
        name=name,
        pipeline=steps)


def _synthesize_loader(cfg: Config, loader: dict, scale: float,
                       where: str) -> List[dict]:
    """Put synthetic sources in one training dataloader config; returns the
    sources it stands in for (name, kind, size, num_classes)."""
    dataset = loader['dataset']
    if _bare(dataset.get('type')) == 'MultiSourceDataset':
        expected = dict(dataset.get('expected_sizes') or {})
        shared = dataset.get('pipeline')
        sources = {}
        for name, source in dataset['sources'].items():
            size = expected.get(name, cfg.get(f'{name}_train_size'))
            if size is None:
                raise KeyError(
                    f'{where}.dataset: source {name!r} declares no size; '
                    f'give it in {where}.dataset.expected_sizes.{name} or as '
                    f'`{name}_train_size`')
            pipeline = source.get('pipeline', shared)
            sources[name] = synthetic_source(
                cfg, name, source, size, pipeline, scale,
                f'{where}.dataset.sources.{name}')
        loader['dataset'] = dict(
            type=dataset['type'], task=dataset['task'], sources=sources,
            pipeline=strip_loading(shared, scale) if shared else None,
            expected_sizes=expected or None)
        found = sources
    else:
        pipeline = _pipeline_of(dataset)
        if pipeline is None:
            raise KeyError(f'{where}.dataset has no pipeline')
        name = 'downstream'
        loader['dataset'] = synthetic_source(
            cfg, name, dataset, DOWNSTREAM_SIZE, pipeline, scale,
            f'{where}.dataset')
        found = {name: loader['dataset']}
    return [
        dict(name=name, kind=s['kind'], size=s['size'],
             num_classes=s['num_classes'], img_shape=tuple(s['img_shape']))
        for name, s in found.items()
    ]


def _scale_preprocessors(model, scale: float) -> None:
    """Scale the pad ``size`` of every data preprocessor in a model config
    (mmseg pads the crops to it)."""
    if isinstance(model, dict):
        pre = model.get('data_preprocessor')
        if isinstance(pre, dict) and pre.get('size') is not None:
            pre['size'] = scale_sizes(pre['size'], scale)
        for value in model.values():
            _scale_preprocessors(value, scale)
    elif isinstance(model, (list, tuple)):
        for value in model:
            _scale_preprocessors(value, scale)


def _is_available(path) -> bool:
    return isinstance(path, str) and '://' not in path and osp.isfile(path)


def _stand_in_checkpoint(backbone: dict, init_cfg: dict, out_dir: str) -> str:
    """A randomly initialised checkpoint of ``backbone`` where its
    ``init_cfg`` names a file that is not here (a model-zoo download), so
    that the loading code still runs: keys under ``init_cfg.prefix``."""
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, osp.basename(str(init_cfg['checkpoint'])) or
                    'stand_in.pth')
    if not path.endswith('.pth'):
        path += '.pth'
    if not osp.isfile(path):
        module = MODELS.build(dict(backbone, init_cfg=None))
        prefix = init_cfg.get('prefix', '')
        prefix = prefix + '.' if prefix and not prefix.endswith('.') else prefix
        state = {prefix + k: v for k, v in module.state_dict().items()}
        torch.save(dict(state_dict=state, meta=dict(stand_in=True)), path)
    return path


def replace_missing_checkpoints(node, out_dir: str, notes: List[str],
                                where: str = 'model') -> None:
    """Point every ``init_cfg`` that loads a file that is not here at a
    stand-in checkpoint of the same architecture, and drop mmseg's
    ``pretrained`` URLs; each change is noted."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if (isinstance(init_cfg, dict)
                and init_cfg.get('type') in CHECKPOINT_INITS
                and not _is_available(init_cfg.get('checkpoint'))
                and 'type' in node):
            path = _stand_in_checkpoint(node, init_cfg, out_dir)
            notes.append(f'{where}.init_cfg.checkpoint '
                         f'{init_cfg["checkpoint"]} is not here: loading a '
                         f'random stand-in ({path})')
            init_cfg['checkpoint'] = path
        if isinstance(node.get('pretrained'), str) and not _is_available(
                node['pretrained']):
            notes.append(f'{where}.pretrained {node["pretrained"]} dropped')
            node['pretrained'] = None
        for key, value in node.items():
            replace_missing_checkpoints(value, out_dir, notes,
                                        f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            replace_missing_checkpoints(value, out_dir, notes,
                                        f'{where}[{i}]')


def _sync_bn_to_bn(node) -> bool:
    changed = False
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
            changed = True
        for value in node.values():
            changed = _sync_bn_to_bn(value) or changed
    elif isinstance(node, (list, tuple)):
        for value in node:
            changed = _sync_bn_to_bn(value) or changed
    return changed


def _tau_hooks(cfg: Config) -> List[dict]:
    return [
        h for h in cfg.get('custom_hooks', [])
        if _bare(h.get('type')) == 'ReconciliationSwitchHook'
    ]


def rehearsal_config(cfg: Config,
                     iters: int,
                     img_scale: float,
                     work_dir: str,
                     stop_at: Optional[int] = None,
                     cost_file: str = 'iteration_cost.json',
                     sync_bn_to_bn: bool = False,
                     num_workers: Optional[int] = None
                     ) -> Tuple[Config, dict]:
    """``cfg`` made into its rehearsal.

    Every training source becomes a :class:`SyntheticSource` of its declared
    size and classes; ``iters`` iterations are trained, the reconciliation
    switch tau moved to ``iters // 2`` (a positive tau only), validation and
    testing are off, a checkpoint is written at ``stop_at`` and at the end,
    missing pretrained checkpoints get random stand-ins, ``num_workers``
    (when given) replaces every training loader's workers, each
    ``SourceMixSampler`` composes the global batch of the config's
    ``num_gpus`` (this process drawing its rank's share), and an
    :class:`IterationCostHook` counts the first iteration. With ``stop_at``
    training stops there (as if killed after that checkpoint) for a resumed
    run to go on.

    Returns:
        tuple: The config and ``dict(max_iters, tau, sources, multi_task,
        notes)``: the real schedule length and tau, the synthetic sources by
        task, whether ``train_dataloader`` maps tasks to loaders, and what
        was changed beyond the data.
    """
    cfg = copy.deepcopy(cfg)
    notes = []
    loaders = cfg.train_dataloader
    multi_task = 'dataset' not in loaders
    sources = {}
    for task, loader in (loaders.items() if multi_task else [('train',
                                                               loaders)]):
        where = f'train_dataloader.{task}' if multi_task else \
            'train_dataloader'
        sources[task] = _synthesize_loader(cfg, loader, img_scale, where)
        sampler = loader.get('sampler') or {}
        if _bare(sampler.get('type')) == 'SourceMixSampler':
            # each process draws one GPU's share of the config's global
            # batch, as it would on the config's num_gpus
            sampler['num_replicas'] = max(cfg.get('num_gpus', 1),
                                          get_world_size())
        if num_workers is not None:
            loader.num_workers = num_workers
            loader.persistent_workers = num_workers > 0
    _scale_preprocessors(cfg.model, img_scale)
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg',
                'test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg[key] = None
    # The transfer suite's hook writes the final validation's metrics.
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', [])
        if _bare(h.get('type')) != 'FinalMetricsHook'
    ]
    real_iters = cfg.train_cfg.get('max_iters')
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.pop('val_interval', None)
    tau = None
    for hook in _tau_hooks(cfg):
        tau = hook.get('tau', 0)
        if tau > 0:
            hook['tau'] = iters // 2  # 0: one joint iteration
    cfg.default_hooks.checkpoint = dict(
        cfg.default_hooks.checkpoint,
        interval=stop_at or iters,
        save_last=True,
        max_keep_ckpts=2)
    if 'logger' in cfg.default_hooks:
        cfg.default_hooks.logger.interval = 1
    # The log keeps every loss; no visualizer backend writes the config
    # again (mmengine formats a config of this size in about 2 s a time).
    if cfg.get('visualizer'):
        cfg.visualizer = dict(cfg.visualizer, vis_backends=[])
    cfg.custom_hooks.append(
        dict(type='xlearner_mm.IterationCostHook', count_iter=0,
             out_file=cost_file))
    if stop_at:
        cfg.custom_hooks.append(
            dict(type='xlearner_mm.StopTrainingHook', after_iter=stop_at))
    replace_missing_checkpoints(cfg.model, osp.join(work_dir, 'stand_ins'),
                                notes)
    load_from = cfg.get('load_from')
    if load_from and not _is_available(load_from):
        raise FileNotFoundError(
            f'load_from={load_from} is not here: a stage that starts from an '
            'earlier stage is rehearsed in its recipe (its `inputs`)')
    teacher = cfg.model.get('teacher_checkpoint')
    if teacher is not None and not _is_available(teacher):
        raise FileNotFoundError(
            f'model.teacher_checkpoint={teacher} is not here: a Squeeze '
            'config is rehearsed in its recipe, after its Expansion Stage')
    if sync_bn_to_bn and _sync_bn_to_bn(cfg.model):
        notes.append('SyncBN trained as BN (no CUDA for its kernels)')
    cfg.work_dir = work_dir
    return cfg, dict(max_iters=real_iters, tau=tau, sources=sources,
                     multi_task=multi_task, notes=notes)
