"""Parameter counts of the models of a training config, stage by stage
(``tools/count_params.py``).

The models are built on PyTorch's ``meta`` device where they can be (shapes
only, no memory and no initialisation: expansion_r50.py in 0.6 s instead of
3.5 s on a CPU), otherwise on the CPU, and no checkpoint is read (a Squeeze teacher's or an X-Learner++ hint
teacher's weights do not change any count).
"""
import copy
import inspect
import os.path as osp
from typing import List, NamedTuple

import torch
from mmengine.config import Config
from torch import nn

from xlearner_mm.models import (GuidanceLayer, HintTeacher, MagnitudePruner,
                                MultiTaskDistiller, build_guidance,
                                prunable_weights, probe_levels)
from xlearner_mm.models.architectures.xlearner import DEFAULT_NECK
from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout
from xlearner_mm.structures.task_layout import without_init_cfg
from xlearner_mm.utils import format_table, register_all_modules
from .recipe import recipe_stages


class ParamRow(NamedTuple):
    """One counted part of a stage's model."""
    stage: str
    part: str
    params: int


def numel(module: nn.Module) -> int:
    """The number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def _default(cls, arg: str):
    """The default of ``cls.__init__``'s argument ``arg``, so that the
    counts use what the class itself would."""
    return inspect.signature(cls).parameters[arg].default


def count_params(config: str) -> List[ParamRow]:
    """The parameter counts of the model of each stage of ``config``.

    - An Expansion config (``XLearner``): each stream, the reconciliation
      layers into each task, each task model (neck and heads), X-Learner++
      guidance layers, the total, the whole expanded export (streams +
      reconciliation, what ``PretrainedExpandedBackbone`` loads) and, with a
      ``MagnitudePruningHook`` (X-Learner_p), what pruning keeps.
    - A Squeeze config (``MultiTaskDistiller``): the student (which is the
      export), the guidance layers of each task, the trained total and the
      frozen teacher's expanded backbone + reconciliation.
    - A recipe config (``stages``, :func:`recipe_stages`): each stage's.

    Args:
        config (str): The config file.

    Returns:
        list[ParamRow]: ``(stage, part, params)`` rows.
    """
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config)
    if 'stages' in cfg:
        return [
            row for stage in recipe_stages(config)[0]
            for row in _model_rows(Config.fromfile(stage['config']),
                                   stage['name'])
        ]
    return _model_rows(cfg, osp.splitext(osp.basename(config))[0])


def _model_rows(cfg: Config, stage: str) -> List[ParamRow]:
    model_type = str(cfg.model.get('type', '')).split('.')[-1]
    builders = dict(XLearner=_expansion_rows, MultiTaskDistiller=_squeeze_rows)
    if model_type not in builders:
        raise ValueError(
            f'{stage}: model.type {model_type!r} is neither XLearner (an '
            'Expansion config) nor MultiTaskDistiller (a Squeeze config)')
    try:
        with torch.device('meta'):
            rows = builders[model_type](cfg)
    except (RuntimeError, NotImplementedError) as error:
        # A module that reads a value while it is built (mmpretrain's ResNet
        # calls .item() on its drop-path rates) cannot be built on meta:
        # torch>=2.4 raises a RuntimeError, torch 2.1 a NotImplementedError.
        if 'meta' not in str(error).lower():
            raise
        rows = builders[model_type](cfg)
    return [ParamRow(stage, part, n) for part, n in rows]


def _expansion_rows(cfg: Config) -> list:
    model_cfg = copy.deepcopy(cfg.model)
    # Hint teachers load their checkpoints when built; their guidance
    # layers are counted from the teachers' widths instead.
    hints = model_cfg.pop('hint_teachers', None) or {}
    model = MODELS.build(model_cfg)
    streams, neck = model.backbone.streams, model.neck
    rows = [(f'stream {s} ({type(streams[s]).__name__})', numel(streams[s]))
            for s in model.layout.streams]
    if neck is not None:
        rows += [(f'reconciliation into {t} '
                  f'({sum(len(v) for v in neck.reconcilers[t].values())} '
                  'layers)', numel(neck.reconcilers[t])) for t in model.tasks]
    rows += [(f'task model {t} ({type(m).__name__}: neck and heads)',
              numel(m)) for t, m in model.task_models.items()]
    hint_rows = [(f'X-Learner++ guidance layers of {t}',
                  _hint_guidance(hint, model.backbone.out_channels[t]))
                 for t, hint in hints.items()]
    expanded = numel(model.backbone) + (numel(neck) if neck else 0)
    rows += hint_rows + [
        ('total', numel(model) + sum(n for _, n in hint_rows)),
        ('export: expanded backbone + reconciliation', expanded)]
    pruning = [h for h in cfg.get('custom_hooks', [])
               if str(h.get('type')).endswith('MagnitudePruningHook')]
    if pruning:
        rows.append(('pruned (X-Learner_p): nonzero in the export',
                     expanded - _pruned(model, pruning[0])))
    return rows


def _hint_guidance(hint: dict, stream_channels) -> int:
    """Parameters of a :class:`HintTeacher`'s guidance layers: one per
    hinted level, from the stream's width to the teacher's."""
    teacher = MODELS.build(without_init_cfg(hint['backbone']))
    channels, _ = probe_levels(teacher)
    levels = hint.get('levels') or range(len(stream_channels))
    norm_cfg = hint.get('norm_cfg', _default(HintTeacher, 'norm_cfg'))
    return sum(
        numel(GuidanceLayer(stream_channels[i], channels[i], norm_cfg))
        for i in levels)


def _pruned(model: nn.Module, hook: dict) -> int:
    """How many weights the pruning hook's settings zero in ``model``."""
    pruner = MagnitudePruner(**{k: v for k, v in hook.items() if k != 'type'})
    prunable = sum(
        w.numel() for w in prunable_weights(model, pruner.patterns).values())
    return prunable - pruner.num_to_keep(model, prunable)


def _squeeze_rows(cfg: Config) -> list:
    model_cfg = cfg.model
    teacher = model_cfg.teacher
    teacher_backbone, teacher_neck = TaskLayout(
        tasks=list(teacher.task_models),
        backbone=teacher.backbone,
        neck=teacher.get('neck', DEFAULT_NECK)).build_expanded()
    student = MODELS.build(
        model_cfg.get('student', _default(MultiTaskDistiller, 'student')))
    levels = probe_levels(student)
    guidance = build_guidance(
        model_cfg.get('guidance', _default(MultiTaskDistiller, 'guidance')),
        MultiTaskDistiller.task_levels(
            model_cfg.get('hint_levels',
                          _default(MultiTaskDistiller, 'hint_levels')),
            teacher_backbone.tasks, len(levels[0])), levels, teacher_backbone)
    rows = [(f'student ({type(student).__name__}), the export',
             numel(student))]
    rows += [(f'guidance layers of {t}', numel(layers))
             for t, layers in guidance.items()]
    rows += [('total (trained)', numel(student) + numel(guidance)),
             ('teacher (frozen): expanded backbone + reconciliation',
              numel(teacher_backbone) +
              (numel(teacher_neck) if teacher_neck else 0))]
    return rows


def format_counts(rows: List[ParamRow]) -> str:
    """The rows as a text table, in millions and exactly."""
    return format_table(
        ('stage', 'part', 'parameters', 'exactly'),
        [(r.stage, r.part, f'{r.params / 1e6:.2f} M', f'{r.params:,}')
         for r in rows], right=(False, False, True, True))
