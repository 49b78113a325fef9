import copy
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModel, ModuleDict
from torch import Tensor

from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout
from ..backbones import as_levels, probe_levels
from .expansion_teacher import ExpansionTeacher
from .frozen_teacher import FrozenTeacherMixin
from .guidance_layer import HINT_REDUCTIONS, hint_loss

# Which images carry task t's hint: every task's (Eq. 3) or task t's own.
HINT_IMAGES = ('all', 'own')
Levels = Union[Sequence[int], Dict[str, Sequence[int]]]


@MODELS.register_module()
class MultiTaskDistiller(FrozenTeacherMixin, BaseModel):
    """X-Learner's Squeeze Stage by distillation (paper Sec. 3.3, Eq. 3-4).

    A normal-sized student backbone learns, FitNets-style, the T task
    features :math:`F^t` of the frozen expanded model of the Expansion Stage:

    .. math::
        L_{squeeze} = \\sum_t \\sum_{i \\in levels} w_i
            \\,\\mathrm{mean}\\big((F_i^t - \\mathcal{G}_i^t(\\hat F_i))^2\\big)

    where :math:`\\hat F_i` is the student's level i and
    :math:`\\mathcal{G}_i^t` a guidance layer (1x1 conv + BN, Eq. 4) per task
    and hinted level. The paper hints the task output features: the last
    level (the default); ``hint_levels`` may name other levels, per task. By
    default the squared distance is averaged over elements
    (``reduction='mean'``, :func:`hint_loss`); ``'sum'`` is Eq. (3) as
    written.

    Eq. (3) sums over the T outputs of the teacher *for one image*: every
    image, whichever task's dataloader gave it, carries all T hints
    (``hint_images='all'``, the default). The teacher runs every stream on
    every batch anyway (the reconciliation reads them all), so the other
    tasks' hints cost T - 1 more reconciliations and guidance layers per
    batch, not another backbone. ``hint_images='own'`` hints task t on task
    t's images only (this class before 2026-12).

    The reduction decides how the tasks are weighted. Eq. (3)'s squared norm
    sums over each feature's C*H*W elements, so a task weighs in proportion
    to its feature size: in ``configs/xlearner/squeeze_r50.py`` the last
    level of a 224x224 classification image has 2048x7x7 = 100,352 elements
    and that of a 640x427 COCO image (resized to 1199x800, padded to
    1216x800) 2048x38x25 = 1,945,600, so ``'sum'`` weighs detection about
    19 times classification and scales the loss (and the gradients at lr
    0.2) with the detection resolution. The mean weighs every task equally,
    whatever its resolution, which is why it is the default: the paper
    weighs no task above another and gives one learning rate for every
    stage.

    Training takes the Expansion Stage's data, one batch per task
    (``{task: batch}`` from ``MultiTaskIterBasedTrainLoop``); their labels are
    unused. Task k's batch goes through task k's data preprocessor; the
    student and the teacher (with reconciliation, i.e. the model after tau)
    both run on those images. The hint of task t on task k's images is
    logged as ``<t>.hint_loss_on_<k>`` (``<t>.hint_loss`` on its own).

    The teacher is the part of the Expansion model (:class:`XLearner`) that
    makes :math:`F^t` (:class:`ExpansionTeacher`: expanded backbone,
    reconciliation neck and the task models' data preprocessors; no heads),
    built from its config and loaded from ``teacher_checkpoint`` at build
    time, after its keys and shapes are checked against the config. It is
    held out of the module tree (:class:`FrozenTeacherMixin`): frozen, in eval mode,
    outside the optimizer, DDP and :meth:`state_dict`, so a squeeze
    checkpoint holds ``student.*`` (the squeezed backbone) and
    ``guidance.<task>.<level>.*``; loading one keeps the teacher as loaded
    from ``teacher_checkpoint``.

    Args:
        teacher (dict): The Expansion model config (``model`` of the
            Expansion config, an :class:`XLearner`).
        teacher_checkpoint (str): The Expansion Stage checkpoint (a path or
            an URL mmengine's ``CheckpointLoader`` reads).
        student (dict): The student backbone, e.g. ``mmdet.ResNet`` (V1b) or
            ``mmseg.ResNetV1c`` (deep stem). It must return as many levels
            as every teacher stream, and its own ``init_cfg`` (e.g.
            Pretrained) initialises it. Defaults to ResNet-50.
        guidance (dict): Guidance layer config; ``in_channels`` and
            ``out_channels`` are filled in. Defaults to
            ``dict(type='GuidanceLayer', norm_cfg=dict(type='BN'))``.
        hint_levels (Sequence[int] | dict): The levels hinted, indices into
            the D levels (negative ones count from the last), for every task,
            or ``{task: levels}`` for each. Defaults to ``(-1, )``, the last
            level.
        level_weights (Sequence[float] | dict, optional): A weight per hinted
            level (per task in a dict, as ``hint_levels``). Defaults to 1 for
            each.
        reduction (str): ``'mean'`` or ``'sum'`` (:func:`hint_loss`; the
            task weighting each implies is above). Defaults to ``'mean'``.
        hint_images (str): ``'all'``: every task's images carry every task's
            hints (Eq. 3); ``'own'``: task t's hints on task t's images only.
            Defaults to ``'all'``.

    Examples:
        # configs/xlearner/squeeze_r50.py (its base is expansion_r50.py): the
        # student is the Expansion streams' ResNet-50, the last level hinted
        model = dict(
            _delete_=True, type='MultiTaskDistiller',
            teacher={{_base_.model}},
            teacher_checkpoint='work_dirs/expansion_r50/iter_150000.pth',
            student={{_base_.model.backbone.backbone}},
            guidance=dict(type='GuidanceLayer', norm_cfg=dict(type='BN')),
            hint_levels=(-1, ), reduction='mean', hint_images='all')
    """

    def __init__(self,
                 teacher: dict,
                 teacher_checkpoint: str,
                 student: dict = dict(
                     type='mmdet.ResNet',
                     depth=50,
                     out_indices=(0, 1, 2, 3),
                     norm_cfg=dict(type='BN', requires_grad=True),
                     style='pytorch'),
                 guidance: dict = dict(
                     type='GuidanceLayer', norm_cfg=dict(type='BN')),
                 hint_levels: Levels = (-1, ),
                 level_weights: Optional[Union[Sequence[float],
                                               Dict[str, Sequence[float]]]] = None,
                 reduction: str = 'mean',
                 hint_images: str = 'all') -> None:
        if not teacher_checkpoint:
            raise ValueError(
                'model.teacher_checkpoint is not set: give the Expansion '
                'checkpoint to distil (e.g. --cfg-options '
                'model.teacher_checkpoint=work_dirs/.../iter_N.pth)')
        if reduction not in HINT_REDUCTIONS:
            raise ValueError(f'model.reduction must be one of '
                             f'{HINT_REDUCTIONS}, got {reduction!r}')
        if hint_images not in HINT_IMAGES:
            raise ValueError(f'model.hint_images must be one of '
                             f'{HINT_IMAGES}, got {hint_images!r}')
        teacher_model = ExpansionTeacher(teacher, teacher_checkpoint)
        # The teacher's task preprocessors prepare each task's batch for the
        # student too, so both see the same normalised images. A copy: the
        # teacher shares no module with the distiller's tree, so train()
        # never reaches any part of it.
        super().__init__(
            data_preprocessor=copy.deepcopy(teacher_model.data_preprocessor))
        self.hold_teacher(teacher_model)
        self.tasks = self.teacher.tasks
        self.layout = self.teacher.layout.squeezed(student)

        self.student = MODELS.build(student)
        student_channels, student_strides = probe_levels(self.student)
        num_levels = len(student_channels)
        for task in self.tasks:
            if self.teacher.backbone.num_levels[task] != num_levels:
                raise ValueError(
                    f'model.student returns {num_levels} levels but teacher '
                    f"stream '{task}' returns "
                    f'{self.teacher.backbone.num_levels[task]}; hint_levels '
                    'index both, so they must have the same number')
        self.hint_levels = self.task_levels(hint_levels, self.tasks,
                                            num_levels)
        self.level_weights = {}
        for task, levels in self.hint_levels.items():
            weights = (level_weights.get(task) if isinstance(
                level_weights, dict) else level_weights)
            if weights is None:
                weights = (1.0, ) * len(levels)
            if len(weights) != len(levels):
                raise ValueError(
                    f'model.level_weights {tuple(weights)} of task '
                    f"'{task}' needs one weight per level of "
                    f'model.hint_levels {levels}')
            self.level_weights[task] = tuple(float(w) for w in weights)

        self.reduction = reduction
        self.hint_images = hint_images
        self.guidance = build_guidance(guidance, self.hint_levels,
                                       (student_channels, student_strides),
                                       self.teacher.backbone)

    @staticmethod
    def task_levels(hint_levels: Levels, tasks: Sequence[str],
                    num_levels: int) -> Dict[str, Tuple[int, ...]]:
        """``hint_levels`` as ``{task: distinct indices in [0, D)}``."""
        if isinstance(hint_levels, dict):
            if set(hint_levels) != set(tasks):
                raise ValueError(
                    f'model.hint_levels names the tasks '
                    f'{sorted(hint_levels)}, the teacher has {sorted(tasks)}')
        else:
            hint_levels = {task: hint_levels for task in tasks}
        found = {}
        for task in tasks:
            levels, normalized = hint_levels[task], []
            for level in levels:
                if not -num_levels <= level < num_levels:
                    raise ValueError(
                        f'model.hint_levels: level {level} is out of the '
                        f'{num_levels} levels')
                normalized.append(level % num_levels)
            if not normalized or len(set(normalized)) != len(normalized):
                raise ValueError(
                    f'model.hint_levels {tuple(levels)} must name distinct '
                    'levels, at least one')
            found[task] = tuple(normalized)
        return found

    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """(N, 3, H, W) images -> the student's D levels :math:`\\hat F_i`."""
        return as_levels(self.student(inputs))

    def loss(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """The hint losses of every task (and level) of the batch.

        Args:
            inputs (dict[str, Tensor]): ``{task: (N_k, 3, H, W) images}``.

        Returns:
            dict[str, Tensor]: ``<t>.hint_loss`` (task t's hint on its own
            images) and, with ``hint_images='all'``, ``<t>.hint_loss_on_<k>``
            (on task k's images); ``<t>.level<i>.hint_loss...`` per level when
            task t hints several (already weighted).
        """
        losses = {}
        for images_task, images in inputs.items():
            hinted = (self.tasks
                      if self.hint_images == 'all' else (images_task, ))
            student_feats = self.extract_feat(images)
            with torch.no_grad():
                teacher_feats = self.teacher.extract_feats(images, hinted)
            for task in hinted:
                suffix = ('' if task == images_task else
                          f'_on_{images_task}')
                losses.update(
                    self._hints(task, student_feats, teacher_feats[task],
                                images, suffix))
        return losses

    def _hints(self, task: str, student_feats: Tuple[Tensor, ...],
               teacher_feats: Tuple[Tensor, ...], images: Tensor,
               suffix: str) -> Dict[str, Tensor]:
        """Task t's weighted hint losses at its levels, on one batch."""
        losses = {}
        levels = self.hint_levels[task]
        for level, weight in zip(levels, self.level_weights[task]):
            student, teacher = student_feats[level], teacher_feats[level]
            if student.shape[-2:] != teacher.shape[-2:]:
                raise ValueError(
                    f"Task '{task}', level {level}: the student's "
                    f'feature is {tuple(student.shape[-2:])} but the '
                    f"teacher's is {tuple(teacher.shape[-2:])} "
                    f'(images {tuple(images.shape[-2:])}); hints are '
                    'not interpolated')
            guided = self.guidance[task][str(level)](student)
            name = ('hint_loss' if len(levels) == 1 else
                    f'level{level}.hint_loss') + suffix
            losses[TaskLayout.task_log_name(task, name)] = (
                weight * hint_loss(guided, teacher, self.reduction))
        return losses

    def forward(self,
                inputs: Dict[str, Tensor],
                data_samples: Optional[Dict[str, list]] = None,
                mode: str = 'tensor'):
        """Args:
            inputs (dict[str, Tensor]): ``{task: (N_t, 3, H, W) images}``.
            data_samples (dict[str, list], optional): Unused: distillation
                needs no labels.
            mode (str): ``'loss'`` returns the hint losses (:meth:`loss`);
                ``'tensor'`` returns the student's levels
                ``{task: (F_hat_1, ..., F_hat_D)}``. There is no
                ``'predict'``: the Squeeze model has no task heads.
        """
        if mode == 'loss':
            return self.loss(inputs)
        if mode == 'tensor':
            return {task: self.extract_feat(x) for task, x in inputs.items()}
        if mode == 'predict':
            raise RuntimeError(
                'MultiTaskDistiller (the Squeeze Stage model) has no task '
                'heads and cannot predict: set val_cfg=None and '
                'test_cfg=None (with their dataloaders and evaluators) in a '
                'squeeze config, and evaluate the student after exporting '
                'it into a downstream model')
        raise RuntimeError(f'Invalid mode "{mode}"; MultiTaskDistiller '
                           'supports "loss" and "tensor"')


def build_guidance(guidance: dict, hint_levels: Dict[str, Sequence[int]],
                   student_levels: Tuple[tuple, tuple],
                   teacher_backbone) -> ModuleDict:
    """``{task: {level: guidance layer}}`` of a :class:`MultiTaskDistiller`
    (also built alone, by ``tools/count_params.py``).

    Args:
        guidance (dict): The guidance layer config; ``in_channels`` and
            ``out_channels`` are filled in.
        hint_levels (dict[str, Sequence[int]]): Each task's hinted levels,
            in [0, D) (:meth:`MultiTaskDistiller.task_levels`).
        student_levels (tuple): ``(channels, strides)`` of the student's
            levels (:func:`probe_levels`).
        teacher_backbone (ExpandedBackbone): The teacher's streams.
    """
    student_channels, student_strides = student_levels
    layers = ModuleDict()
    for task in teacher_backbone.tasks:
        channels = teacher_backbone.out_channels[task]
        strides = teacher_backbone.out_strides[task]
        layers[task] = ModuleDict()
        for level in hint_levels[task]:
            if strides[level] != student_strides[level]:
                raise ValueError(
                    f'Level {level}: the student has stride '
                    f'{student_strides[level]} but teacher stream '
                    f"'{task}' has stride {strides[level]}; hints are "
                    'not interpolated, choose a student of the same '
                    'strides')
            cfg = copy.deepcopy(guidance)
            cfg.update(
                in_channels=student_channels[level],
                out_channels=channels[level])
            layers[task][str(level)] = MODELS.build(cfg)
    return layers
