"""Export the backbone that X-Learner pre-trained, for use in stock configs.

Three kinds of checkpoints come in, told apart by their state-dict keys:

- Squeeze Stage (:class:`MultiTaskDistiller`): ``student.<backbone keys>``,
  ``guidance.<task>.*`` and possibly ``teacher.*``. The student backbone is
  written with its plain keys.
- Expansion Stage (:class:`XLearner`), pruned (X-Learner_p) or not:
  ``backbone.streams.<task>.<backbone keys>``, ``neck.*``,
  ``task_models.*``. With ``task`` one stream is written with plain keys;
  without, the expanded backbone and the reconciliation neck are written
  under ``backbone.`` and ``neck.`` with their configs in ``meta['model']``.

A backbone written with plain keys is what stock configs load through
``init_cfg=dict(type='Pretrained', checkpoint=...)``: mmdet's ``ResNet``,
mmseg's ``ResNetV1b``/``ResNetV1c``/``ResNetV1d`` and mmpretrain's ``ResNet``
name their parameters alike (``conv1.weight``, ``bn1.*``, ``layer1.0.*``, or
``stem.*`` with a deep stem), so no key mapping is needed. A student without
deep stem (``conv1``) fits the V1b configs (mmdet ResNet-50, mmseg ``r50b``,
mmpretrain ``resnet50``), one with deep stem (``stem.*``) fits the V1c
configs (mmseg ``r50-d8``); ``meta['deep_stem']`` says which.
"""
import ast
import hashlib
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch

from xlearner_mm.models.architectures.xlearner import _HEAD_KEYS
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import atomic_torch_save, register_all_modules
from xlearner_mm.utils.checkpoint_file import check_checkpoint_file
from xlearner_mm.utils.compat import load_checkpoint

STUDENT_PREFIX = 'student.'
GUIDANCE_PREFIX = 'guidance.'
STREAMS_PREFIX = 'backbone.streams.'
BACKBONE_PREFIX = 'backbone.'
NECK_PREFIX = 'neck.'


def load_checkpoint_file(path: str, key: str = 'checkpoint') -> dict:
    """The checkpoint at ``path`` on the CPU, read safely
    (:func:`xlearner_mm.utils.compat.load_checkpoint`: with
    ``weights_only=True`` and the classes mmengine pickles allow-listed, on
    torch>=2.4), with clear errors.

    Args:
        path (str): The checkpoint file.
        key (str): Where the path came from (an argument or config key),
            named by the errors.

    Returns:
        dict: The checkpoint; a bare state dict becomes
        ``dict(state_dict=..., meta={})``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{key}: checkpoint file not found: {path}')
    check_checkpoint_file(path, key)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise TypeError(f'{path} holds a {type(ckpt).__name__}, not a '
                        'checkpoint dict')
    if 'state_dict' not in ckpt:
        ckpt = dict(state_dict=ckpt, meta={})
    return ckpt


def _literal(node: ast.AST):
    """The value of a literal, container of literals or ``dict(k=v, ...)``
    call; ValueError for anything else."""
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == 'dict'
                and not node.args
                and all(kw.arg is not None for kw in node.keywords)):
            raise ValueError('not a plain dict(...) call')
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    return ast.literal_eval(node)


def parse_config_text(text: Optional[str]) -> dict:
    """Read the config that mmengine dumps into ``meta['cfg']`` without
    running it.

    ``Config.fromstring`` would execute the text: Python from the checkpoint
    file, which is what loading with ``weights_only=True`` avoids. mmengine
    dumps a config as assignments of literals and ``dict(...)`` calls, so
    those are evaluated here and any other statement is skipped.

    Args:
        text (str, optional): Config text.

    Returns:
        dict: ``{top-level name: value}``; empty for no or unreadable text.
    """
    if not text:
        return {}
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    cfg = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            continue
        try:
            cfg[node.targets[0].id] = _literal(node.value)
        except ValueError:
            continue
    return cfg


def _find(cfg, key: str):
    """The first ``key`` entry met in a depth-first walk of nested dicts."""
    if not isinstance(cfg, dict):
        return None
    if isinstance(cfg.get(key), dict):
        return cfg[key]
    for value in cfg.values():
        found = _find(value, key)
        if found is not None:
            return found
    return None


def _heads_of(model_cfg: dict) -> Optional[List[str]]:
    """Source names of a task model config's per-source heads (the
    ``heads`` of a ``MultiSource*Head``), or None."""
    for key in _HEAD_KEYS:
        head = model_cfg.get(key)
        if not isinstance(head, dict):
            continue
        if isinstance(head.get('heads'), dict):
            return list(head['heads'])
        nested = _heads_of(head)  # e.g. roi_head.bbox_head
        if nested is not None:
            return nested
    return None


def task_sources(cfg: dict, tasks: List[str]) -> Dict[str, Optional[List[str]]]:
    """Best-effort source names of each task, read from a parsed config.

    In order: the per-source heads of ``task_models.<task>`` found anywhere
    under ``model`` (an XLearner, or the teacher of a distiller); the task
    alone when that task model has ordinary heads (as :class:`XLearner`
    counts it); the keys of ``train_dataloader.<task>.dataset.sources``.
    None when the config says nothing about the task.
    """
    task_models = _find(cfg.get('model'), 'task_models') or {}
    loaders = cfg.get('train_dataloader')
    sources = {}
    for task in tasks:
        names = None
        if isinstance(task_models.get(task), dict):
            names = _heads_of(task_models[task]) or [task]
        elif isinstance(loaders, dict) and isinstance(loaders.get(task), dict):
            dataset_sources = (loaders[task].get('dataset') or {}).get('sources')
            if isinstance(dataset_sources, dict):
                names = list(dataset_sources)
        sources[task] = names
    return sources


def _tasks_under(state_dict: dict, prefix: str) -> List[str]:
    """Distinct ``<task>`` of the keys ``<prefix><task>.*``, in key order."""
    tasks = []
    for key in state_dict:
        if key.startswith(prefix):
            task = key[len(prefix):].split('.', 1)[0]
            if task not in tasks:
                tasks.append(task)
    return tasks


def _strip(state_dict: dict, prefix: str) -> Dict[str, torch.Tensor]:
    return {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }


def detect_stage(state_dict: dict, meta: dict, path: str) -> str:
    """``'squeeze'`` or ``'expansion'`` from the keys; errors name the file."""
    if 'source_checkpoint' in meta and 'stage' in meta:
        raise ValueError(
            f'{path} is already an exported backbone (stage '
            f'"{meta["stage"]}", exported from {meta["source_checkpoint"]}); '
            'pass the training checkpoint instead')
    has_student = any(k.startswith(STUDENT_PREFIX) for k in state_dict)
    has_streams = any(k.startswith(STREAMS_PREFIX) for k in state_dict)
    if has_student and has_streams:
        raise ValueError(f'{path} has both "{STUDENT_PREFIX}*" (Squeeze) and '
                         f'"{STREAMS_PREFIX}*" (Expansion) keys')
    if has_student:
        return 'squeeze'
    if has_streams:
        return 'expansion'
    prefixes = sorted({k.split('.', 1)[0] for k in state_dict})
    raise ValueError(
        f'Cannot tell the stage of {path}: it has neither "{STUDENT_PREFIX}*" '
        f'keys (Squeeze Stage distiller) nor "{STREAMS_PREFIX}*" keys '
        f'(Expansion Stage XLearner); its top-level key prefixes are '
        f'{prefixes}')


def _without_init_cfg(cfg) -> Optional[dict]:
    """A module config without its ``init_cfg`` nor those of its
    ``backbone`` and ``stream_overrides``: they name what the training run
    started from, and would load it over the export."""
    if not isinstance(cfg, dict):
        return None
    cfg = {k: v for k, v in cfg.items() if k != 'init_cfg'}
    if isinstance(cfg.get('backbone'), dict):
        cfg['backbone'] = _without_init_cfg(cfg['backbone'])
    if isinstance(cfg.get('stream_overrides'), dict):
        cfg['stream_overrides'] = {
            t: _without_init_cfg(o)
            for t, o in cfg['stream_overrides'].items()
        }
    return cfg


def export_backbone(checkpoint: str,
                    out: Optional[str] = None,
                    task: Optional[str] = None) -> dict:
    """Export the pre-trained backbone of a Squeeze or Expansion checkpoint.

    Args:
        checkpoint (str): mmengine checkpoint of a ``MultiTaskDistiller``
            (Squeeze Stage) or an ``XLearner`` (Expansion Stage, pruned or not).
        out (str, optional): Where to write the export (atomically). None
            only returns it.
        task (str, optional): Expansion checkpoints only: write this task's
            sub-backbone with plain keys. None writes the whole expanded
            backbone and reconciliation neck.

    Returns:
        dict: ``dict(state_dict=..., meta=...)``. ``meta`` has ``stage``
        (``'squeeze'``/``'expansion'``), ``task``, ``tasks`` (the tasks whose
        data trained the written weights), ``checkpoint_tasks`` (all tasks of
        the checkpoint), ``sources`` (``{task: [source names]}`` of ``tasks``,
        best effort from the config, None where unknown), ``config_hash``
        (sha256 of ``meta['cfg']``, None without one), ``source_checkpoint``,
        ``iter``/``epoch`` of the checkpoint; for a plain backbone also
        ``deep_stem``, ``resnet`` (:func:`resnet_layout`) and ``backbone``
        (its config, None where unknown); for
        a whole expanded export ``model`` (the ``ExpandedBackbone`` and
        ``ReconciliationNeck`` configs) and ``custom_imports``.
    """
    ckpt = load_checkpoint_file(checkpoint)
    state_dict, meta_in = ckpt['state_dict'], ckpt.get('meta') or {}
    stage = detect_stage(state_dict, meta_in, checkpoint)
    cfg_text = meta_in.get('cfg')
    cfg = parse_config_text(cfg_text)
    model_cfg = cfg.get('model') if isinstance(cfg.get('model'), dict) else {}
    if stage == 'squeeze':
        checkpoint_tasks, tasks, weights, extra = _squeeze_part(
            state_dict, model_cfg, checkpoint, task)
    else:
        checkpoint_tasks, tasks, weights, extra = _expansion_part(
            state_dict, model_cfg, checkpoint, task)
    meta = dict(
        stage=stage,
        task=task,
        tasks=tasks,
        checkpoint_tasks=checkpoint_tasks,
        sources=task_sources(cfg, tasks),
        config_hash=hashlib.sha256(cfg_text.encode()).hexdigest()
        if cfg_text else None,
        source_checkpoint=osp.abspath(checkpoint),
        iter=meta_in.get('iter'),
        epoch=meta_in.get('epoch'),
        **extra)
    exported = dict(state_dict=weights, meta=meta)
    if out is not None:
        atomic_torch_save(exported, out)
    return exported


def _plain_backbone_meta(weights: dict, backbone_cfg) -> dict:
    return dict(
        deep_stem='stem.0.weight' in weights,
        resnet=resnet_layout(weights),
        backbone=_without_init_cfg(backbone_cfg))


def resnet_layout(weights: Dict[str, torch.Tensor]) -> Optional[dict]:
    """The ResNet a plain-key state dict holds, read from its weights:
    ``depth`` (None when no stock depth has its blocks), ``block``,
    ``stage_blocks``, ``base_channels`` (the first stage's width),
    ``stem_channels`` and ``deep_stem``; None for a state dict that is no
    mmdet/mmseg/mmpretrain ResNet."""
    from mmdet.models.backbones import ResNet
    deep_stem = 'stem.0.weight' in weights
    stem_key = 'stem.6.weight' if deep_stem else 'conv1.weight'
    if stem_key not in weights or 'layer1.0.conv1.weight' not in weights:
        return None
    stage_blocks = []
    while any(k.startswith(f'layer{len(stage_blocks) + 1}.') for k in weights):
        stage = len(stage_blocks) + 1
        stage_blocks.append(len({
            k.split('.')[1]
            for k in weights if k.startswith(f'layer{stage}.')
        }))
    expansion = 4 if 'layer1.0.conv3.weight' in weights else 1
    depth = next((d for d, (block, blocks) in ResNet.arch_settings.items()
                  if block.expansion == expansion
                  and tuple(blocks) == tuple(stage_blocks)), None)
    return dict(
        depth=depth,
        block='Bottleneck' if expansion == 4 else 'BasicBlock',
        stage_blocks=stage_blocks,
        base_channels=int(weights['layer1.0.conv1.weight'].shape[0]),
        stem_channels=int(weights[stem_key].shape[0]),
        deep_stem=deep_stem)


def stock_configs_fitted(meta: dict) -> str:
    """Which stock configs a plain-key export loads into with no missing or
    unexpected key and no shape mismatch, judged by its depth, widths and
    stem (``meta['resnet']``)."""
    layout = meta.get('resnet')
    if layout is None:
        return 'no stock ResNet config: the weights are no ResNet'
    depth = layout['depth']
    standard = (depth is not None and layout['base_channels'] == 64
                and layout['stem_channels'] == 64)
    if not standard:
        return (f'no stock config: a {layout["block"]} ResNet with stage '
                f'blocks {layout["stage_blocks"]}, base_channels '
                f'{layout["base_channels"]} and stem_channels '
                f'{layout["stem_channels"]} (stock configs have 64 and 64); '
                'set these in the config\'s model.backbone '
                f'(depth={depth}, base_channels={layout["base_channels"]}, '
                f'stem_channels={layout["stem_channels"]})')
    if layout['deep_stem']:
        return (f'ResNet-{depth}, V1c deep stem (stem.*): mmseg '
                f'"r{depth}-d8" (ResNetV1c) configs')
    return (f'ResNet-{depth}, V1b stem (conv1): mmdet ResNet-{depth} '
            f'configs, mmseg "r{depth}b" configs, mmpretrain resnet{depth} '
            'configs')


def _squeeze_part(state_dict: dict, model_cfg: dict, path: str,
                  task: Optional[str]) -> tuple:
    """(checkpoint tasks, trained tasks, weights, extra meta) of a
    distiller checkpoint: its student with plain keys."""
    if task is not None:
        raise ValueError(
            f'--task "{task}" is meaningless for {path}: it is a Squeeze '
            'Stage checkpoint, whose single student backbone serves every task')
    tasks = _tasks_under(state_dict, GUIDANCE_PREFIX)
    weights = _strip(state_dict, STUDENT_PREFIX)
    return tasks, tasks, weights, _plain_backbone_meta(
        weights, model_cfg.get('student'))


def _expansion_part(state_dict: dict, model_cfg: dict, path: str,
                    task: Optional[str]) -> tuple:
    """(checkpoint tasks, trained tasks, weights, extra meta) of an XLearner
    checkpoint: one stream with plain keys, or the whole expanded backbone
    and neck with their configs."""
    checkpoint_tasks = _tasks_under(state_dict, STREAMS_PREFIX)
    backbone = model_cfg.get('backbone')
    backbone = backbone if isinstance(backbone, dict) else {}
    if task is not None:
        if task not in checkpoint_tasks:
            raise ValueError(
                f'{path} has no sub-backbone for task "{task}"; its expanded '
                f'backbone has the tasks {checkpoint_tasks}')
        weights = _strip(state_dict, f'{STREAMS_PREFIX}{task}.')
        stream_cfg = None
        if isinstance(backbone.get('backbone'), dict):
            overrides = (backbone.get('stream_overrides') or {}).get(task)
            stream_cfg = dict(backbone['backbone'], **(overrides or {}))
        return checkpoint_tasks, [task], weights, _plain_backbone_meta(
            weights, stream_cfg)
    weights = {
        k: v
        for k, v in state_dict.items()
        if k.startswith(BACKBONE_PREFIX) or k.startswith(NECK_PREFIX)
    }
    neck = _without_init_cfg(model_cfg.get('neck'))
    has_neck = any(k.startswith(NECK_PREFIX) for k in weights)
    model = dict(
        backbone=dict(
            _without_init_cfg(backbone),
            type='xlearner_mm.ExpandedBackbone',
            tasks=checkpoint_tasks) if backbone else None,
        neck=dict(neck, type='xlearner_mm.ReconciliationNeck')
        if has_neck and neck else None)
    return checkpoint_tasks, checkpoint_tasks, weights, dict(
        model=model, custom_imports=dict(imports=['xlearner_mm']))


def load_expanded_export(path: str) -> Tuple[torch.nn.Module,
                                             Optional[torch.nn.Module]]:
    """Rebuild the expanded backbone and reconciliation neck of a whole
    Expansion export (``export_backbone(ckpt, out)`` without ``task``).

    The configs come from ``meta['model']``; the neck's ``in_channels`` and
    ``strides`` are read from the backbone, as :class:`XLearner` does. The
    weights are loaded strictly.

    Returns:
        tuple: ``(ExpandedBackbone, ReconciliationNeck or None)``; apply them
        as ``neck(backbone(x), task)`` for task t's :math:`F^t`.
    """
    register_all_modules(init_default_scope=False)
    exported = load_checkpoint_file(path)
    meta = exported['meta']
    model = meta.get('model')
    if meta.get('stage') != 'expansion' or meta.get('task') is not None:
        raise ValueError(f'{path} is not a whole expanded-backbone export '
                         f'(stage {meta.get("stage")}, task {meta.get("task")})')
    if not model or not model.get('backbone'):
        raise ValueError(f'{path} has no backbone config in meta["model"] '
                         '(its source checkpoint had no readable meta["cfg"])')
    backbone = MODELS.build(model['backbone'])
    state_dict = exported['state_dict']
    backbone.load_state_dict(_strip(state_dict, BACKBONE_PREFIX), strict=True)
    neck = None
    if model.get('neck'):
        neck = MODELS.build(
            dict(model['neck'], in_channels=backbone.out_channels,
                 strides=backbone.out_strides))
        neck.load_state_dict(_strip(state_dict, NECK_PREFIX), strict=True)
    return backbone, neck
