"""Export the backbone that X-Learner pre-trained, for use in stock configs.

Two kinds of training checkpoints come in, told apart by their state-dict
keys (:meth:`TaskLayout.stage_of`):

- Squeeze Stage (:class:`MultiTaskDistiller`): ``student.<backbone keys>``
  and ``guidance.<task>.*``. The student backbone is written with its plain
  keys.
- Expansion Stage (:class:`XLearner`), pruned (X-Learner_p) or not:
  ``backbone.streams.<stream>.<backbone keys>``, ``neck.*``,
  ``task_models.*``. With ``task`` the task's stream is written with plain
  keys; without, the expanded backbone and the reconciliation neck are
  written under ``backbone.`` and ``neck.`` with the :class:`TaskLayout` that
  rebuilds them in ``meta['task_layout']``. A Hard-sharing checkpoint (one
  stream for all tasks, no squeeze) gives its one stream with plain keys,
  with or without ``task``.

What the checkpoint holds (tasks, sources, stream and student configs) is
read from the :class:`TaskLayout` that training saved in its
``meta['task_layout']``; the training config stored in the checkpoint is not
executed. A checkpoint written before layouts were saved gives its tasks
from its keys only, unless its training config is passed (``config``).

A backbone written with plain keys is what stock configs load through
``init_cfg=dict(type='Pretrained', checkpoint=...)``: mmdet's ``ResNet``,
mmseg's ``ResNetV1b``/``ResNetV1c``/``ResNetV1d`` and mmpretrain's ``ResNet``
name their parameters alike (``conv1.weight``, ``bn1.*``, ``layer1.0.*``, or
``stem.*`` with a deep stem), so no key mapping is needed. A student without
deep stem (``conv1``) fits the V1b configs (mmdet ResNet-50, mmseg ``r50b``,
mmpretrain ``resnet50``), one with deep stem (``stem.*``) fits the V1c
configs (mmseg ``r50-d8``); ``meta['deep_stem']`` says which.
"""
import hashlib
import os.path as osp
from typing import Dict, Optional, Tuple

import torch
from mmengine.config import Config

from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout, read_checkpoint
from xlearner_mm.utils import atomic_torch_save, register_all_modules


def layout_of_config(config: str) -> TaskLayout:
    """The :class:`TaskLayout` of the model of a training config: an
    Expansion config (its :class:`XLearner`) or a Squeeze config (the
    layout of its teacher, squeezed into its student). The XLearner is built
    (without loading any checkpoint) and asked."""
    register_all_modules(init_default_scope=False)
    model = Config.fromfile(config).model
    expansion = model.get('teacher', model)
    layout = MODELS.build(expansion).layout
    return layout.squeezed(model.student) if 'teacher' in model else layout


def export_backbone(checkpoint: str,
                    out: Optional[str] = None,
                    task: Optional[str] = None,
                    config: Optional[str] = None) -> dict:
    """Export the pre-trained backbone of a Squeeze or Expansion checkpoint.

    Args:
        checkpoint (str): mmengine checkpoint of a ``MultiTaskDistiller``
            (Squeeze Stage) or an ``XLearner`` (Expansion Stage, pruned or not).
        out (str, optional): Where to write the export (atomically). None
            only returns it.
        task (str, optional): Expansion checkpoints only: write this task's
            stream with plain keys. None writes the whole expanded
            backbone and reconciliation neck, or the one stream of a
            Hard-sharing backbone.
        config (str, optional): The training config of a checkpoint that
            has no saved layout (written before layouts were saved); its
            layout is then read from this config (:func:`layout_of_config`).
            Defaults to None.

    Returns:
        dict: ``dict(state_dict=..., meta=...)``. ``meta`` has ``stage``
        (``'squeeze'``/``'expansion'``), ``task``, ``tasks`` (the tasks whose
        data trained the written weights), ``checkpoint_tasks`` (all tasks of
        the checkpoint), ``sources`` (``{task: [source names]}`` of ``tasks``,
        None where unknown), ``config_hash``
        (sha256 of ``meta['cfg']``, None without one), ``source_checkpoint``,
        ``iter``/``epoch`` of the checkpoint; for a plain backbone also
        ``deep_stem``, ``resnet`` (:func:`resnet_layout`) and ``backbone``
        (its config, None where unknown); for a whole expanded export
        ``task_layout`` (the :class:`TaskLayout`, whose configs rebuild the
        ``ExpandedBackbone`` and ``ReconciliationNeck``) and
        ``custom_imports``.
    """
    ckpt = read_checkpoint(checkpoint)
    state_dict, meta_in = ckpt['state_dict'], ckpt['meta']
    if 'source_checkpoint' in meta_in and 'stage' in meta_in:
        raise ValueError(
            f'{checkpoint} is already an exported backbone (stage '
            f'"{meta_in["stage"]}", exported from '
            f'{meta_in["source_checkpoint"]}); pass the training checkpoint '
            'instead')
    layout = (layout_of_config(config) if config else
              TaskLayout.from_meta(meta_in)) or TaskLayout.from_state_dict(
                  state_dict, checkpoint)
    stage = TaskLayout.stage_of(state_dict, checkpoint)
    if layout.stage != stage:
        raise ValueError(f'{checkpoint} has {stage} Stage keys but its layout '
                         f'(from {config or "its meta"}) is of the '
                         f'{layout.stage} Stage')
    if stage == 'squeeze':
        tasks, weights, extra = _squeeze_part(state_dict, layout, checkpoint,
                                              task)
    else:
        tasks, weights, extra = _expansion_part(state_dict, layout,
                                                checkpoint, task)
    cfg_text = meta_in.get('cfg')
    meta = dict(
        stage=stage,
        task=task,
        tasks=tasks,
        checkpoint_tasks=list(layout.tasks),
        sources={t: None if layout.sources is None else list(
            layout.sources[t]) for t in tasks},
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
        backbone=backbone_cfg)


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


def _squeeze_part(state_dict: dict, layout: TaskLayout, path: str,
                  task: Optional[str]) -> tuple:
    """(trained tasks, weights, extra meta) of a distiller checkpoint: its
    student with plain keys."""
    if task is not None:
        raise ValueError(
            f'--task "{task}" is meaningless for {path}: it is a Squeeze '
            'Stage checkpoint, whose single student backbone serves every task')
    weights = TaskLayout.strip(state_dict, TaskLayout.STUDENT)
    return list(layout.tasks), weights, _plain_backbone_meta(
        weights, layout.student)


def _expansion_part(state_dict: dict, layout: TaskLayout, path: str,
                    task: Optional[str]) -> tuple:
    """(trained tasks, weights, extra meta) of an XLearner checkpoint: one
    stream with plain keys (the task's, or the one of a Hard-sharing
    backbone), or the whole expanded backbone and neck with their layout."""
    if task is not None or layout.shared:
        if task is not None and task not in layout.tasks:
            raise ValueError(
                f'{path} has no sub-backbone for task "{task}"; its expanded '
                f'backbone has the tasks {list(layout.tasks)}')
        task = task or layout.tasks[0]
        weights = TaskLayout.strip(state_dict, layout.stream_prefix(task))
        trained = layout.tasks_on(layout.stream_of(task))
        return list(trained), weights, _plain_backbone_meta(
            weights, layout.stream_config(task))
    if not layout.backbone:
        raise ValueError(
            f'{path} has no saved layout (it was written before checkpoints '
            'held one), so the config of its expanded backbone is unknown: '
            'pass its training config (tools/export_backbone.py --config '
            'CONFIG)')
    return list(layout.tasks), TaskLayout.expansion_state(state_dict), dict(
        task_layout=layout.to_dict(),
        custom_imports=dict(imports=['xlearner_mm']))


def load_expanded_export(path: str) -> Tuple[torch.nn.Module,
                                             Optional[torch.nn.Module]]:
    """Rebuild the expanded backbone and reconciliation neck of a whole
    Expansion export (``export_backbone(ckpt, out)`` without ``task``) or of
    an Expansion checkpoint (:meth:`TaskLayout.read_expanded`).

    The configs come from the :class:`TaskLayout` in the file's meta (the
    ``meta['model']`` of exports written before layouts were saved is read
    too); the neck's ``in_channels`` and ``strides`` are read from the
    backbone, as :class:`XLearner` does. The weights are loaded strictly.

    Returns:
        tuple: ``(ExpandedBackbone, ReconciliationNeck or None)``; apply them
        as ``neck(backbone(x), task)`` for task t's :math:`F^t`.
    """
    register_all_modules(init_default_scope=False)
    layout, state_dict = TaskLayout.read_expanded(path)
    backbone, neck = layout.build_expanded()
    backbone.load_state_dict(
        TaskLayout.strip(state_dict, TaskLayout.BACKBONE), strict=True)
    if neck is not None:
        neck.load_state_dict(
            TaskLayout.strip(state_dict, TaskLayout.NECK), strict=True)
    return backbone, neck
