import os.path as osp
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule, ModuleDict
from torch import Tensor

from xlearner_mm.registry import MODELS
from .frozen_teacher import FrozenTeacherMixin
from .guidance_layer import GuidanceLayer, hint_loss

# init_cfg types that load a backbone from a checkpoint.
_CHECKPOINT_INITS = ('Pretrained', 'ZooPretrained')


@MODELS.register_module()
class HintTeacher(FrozenTeacherMixin, BaseModule):
    """X-Learner++ hint of one task (paper Sec. 3.4): a frozen single-task
    single-source pretrained backbone whose features supervise the task's
    Expansion stream through guidance layers, as FitNets hints.

    For every hinted level l the loss is
    ``hint_loss(G_l(F_l^t), H_l)``: :math:`F_l^t` is level l of the task's
    stream (after reconciliation), :math:`H_l` level l of the teacher on the
    same preprocessed images and :math:`G_l` a :class:`GuidanceLayer`. The
    loss is the mean over the hinted levels times ``loss_weight``.

    The teacher loads its checkpoint when this module is built and is held
    out of the module tree (:class:`FrozenTeacherMixin`): no optimizer, DDP
    or checkpoint sees it, and it stays in eval mode with its pretrained
    weights. The guidance layers are ordinary submodules: trained, and
    saved.

    Args:
        backbone (dict): The teacher's backbone config; its ``init_cfg``
            must load a checkpoint (``Pretrained`` or ``ZooPretrained``).
            Its levels must have the strides of the stream's levels.
        in_channels (Sequence[int]): Channels of the stream's D levels.
        in_strides (Sequence[int]): Strides of the stream's D levels.
        task (str): The hinted task, for messages.
        levels (Sequence[int], optional): Hinted level indices (into both the
            stream's and the teacher's levels). Defaults to all of the
            stream's levels.
        loss_weight (float): Defaults to 1.0.
        norm_cfg (dict): Norm layer of the guidance layers. Defaults to BN.
        init_cfg (dict, optional): Of the guidance layers. Defaults to None.

    Examples:
        # XLearner builds it from an entry of model.hint_teachers, here the
        # cls entry of configs/xlearner/expansion_r50_plusplus.py, adding
        # the type, the task and the stream's channels and strides
        hint_teacher = dict(
            type='HintTeacher', task='cls', levels=(3, ), loss_weight=1.0,
            in_channels=(256, 512, 1024, 2048), in_strides=(4, 8, 16, 32),
            backbone=dict(type='mmpretrain.ResNet', depth=50,
                          out_indices=(0, 1, 2, 3),
                          init_cfg=dict(type='ZooPretrained',
                                        checkpoint=cls_teacher)))
    """

    def __init__(self,
                 backbone: dict,
                 in_channels: Sequence[int],
                 in_strides: Sequence[int],
                 task: str,
                 levels: Optional[Sequence[int]] = None,
                 loss_weight: float = 1.0,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.task = task
        self.loss_weight = loss_weight
        where = f'model.hint_teachers.{task}'
        self._check_checkpoint(backbone.get('init_cfg'), where)
        # An ExpandedBackbone of one stream: the teacher's level widths and
        # strides are probed the same way as the streams'.
        teacher = MODELS.build(
            dict(type='ExpandedBackbone', tasks=(task, ), backbone=backbone))
        teacher.init_weights()
        self.hold_teacher(teacher)

        channels = teacher.out_channels[task]
        strides = teacher.out_strides[task]
        levels = tuple(range(len(in_channels)) if levels is None else levels)
        depth = min(len(in_channels), len(channels))
        for level in levels:
            if not 0 <= level < depth:
                raise ValueError(
                    f'{where}.levels: level {level} is not among the '
                    f'{len(in_channels)} levels of the stream and the '
                    f'{len(channels)} levels of the teacher')
            if strides[level] != in_strides[level]:
                raise ValueError(
                    f'{where}: level {level} has stride {in_strides[level]} '
                    f'in the stream but {strides[level]} in the teacher')
        if not levels:
            raise ValueError(f'{where}.levels is empty')
        self.levels = levels
        self.guides = ModuleDict({
            str(level): GuidanceLayer(in_channels[level], channels[level],
                                      norm_cfg)
            for level in levels
        })

    @staticmethod
    def _check_checkpoint(init_cfg, where: str) -> None:
        """A teacher without pretrained weights gives meaningless hints, and a
        missing file should fail at build, not after data loading."""
        cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
        paths = [c['checkpoint'] for c in cfgs if isinstance(c, dict)
                 and c.get('type') in _CHECKPOINT_INITS and 'checkpoint' in c]
        if not paths:
            raise ValueError(
                f'{where}.backbone.init_cfg must load the teacher from a '
                f'checkpoint (type one of {_CHECKPOINT_INITS}), got {init_cfg}')
        for path in paths:
            if '://' not in path and not osp.isfile(path):
                raise FileNotFoundError(
                    f'{where}: teacher checkpoint {path} does not exist')

    def extra_repr(self) -> str:
        return f'task={self.task}, levels={self.levels}, teacher (frozen): ' \
            f'{type(self.teacher.streams[self.task]).__name__}'

    def idle_loss(self) -> Tensor:
        """A zero loss that still reaches the guidance layers, for the
        iterations in which the hints are off (``hint_phase='before_tau'``
        after tau): DistributedDataParallel, which runs with
        ``find_unused_parameters=False``, expects a gradient for every
        parameter in every iteration."""
        return sum(p.sum() for p in self.guides.parameters()) * 0.

    def forward(self, images: Tensor, feats: Tuple[Tensor, ...]) -> Tensor:
        """Args:
            images (Tensor): (N, 3, H, W) images the stream ran on.
            feats (tuple[Tensor]): The stream's D levels, level l of shape
                (N, C_l, H / s_l, W / s_l).

        Returns:
            Tensor: The weighted hint loss, a scalar.
        """
        with torch.no_grad():
            hints = self.teacher(images)[self.task]
        loss = sum(
            hint_loss(self.guides[str(level)](feats[level]), hints[level])
            for level in self.levels) / len(self.levels)
        return self.loss_weight * loss
