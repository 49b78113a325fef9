from typing import Optional

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from xlearner_mm.registry import MODELS


@MODELS.register_module()
class GuidanceLayer(BaseModule):
    """FitNets guidance layer :math:`\\mathcal{G}^t` (paper Sec. 3.3, Eq. 4).

    A 1x1 convolution followed by a normalization layer that projects the
    student's feature :math:`\\hat{F}` to the width of a teacher's feature
    :math:`F^t`: ``(N, C_student, H, W) -> (N, C_teacher, H, W)``. The same
    layer regresses an Expansion stream onto a single-task teacher's hint in
    X-Learner++ (Sec. 3.4).

    Args:
        in_channels (int): C_student.
        out_channels (int): C_teacher.
        norm_cfg (dict): Normalization layer. Defaults to BN.
        init_cfg (dict, optional): Initialization config. Defaults to None.

    Examples:
        # model.guidance of configs/xlearner/squeeze_r50.py; the distiller
        # fills in in_channels and out_channels per task and level
        guidance = dict(type='GuidanceLayer', norm_cfg=dict(type='BN'))
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.proj = ConvModule(
            in_channels,
            out_channels,
            kernel_size=1,
            norm_cfg=norm_cfg,
            act_cfg=None)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_student, H, W) -> (N, C_teacher, H, W)."""
        return self.proj(x)


# How hint_loss reduces the squared differences.
HINT_REDUCTIONS = ('mean', 'sum')


def hint_loss(student: Tensor, teacher: Tensor,
              reduction: str = 'mean') -> Tensor:
    """Squared L2 distance between a guided student feature and a teacher
    feature (Eq. 3-4's :math:`\\|F^t - \\mathcal{G}^t(\\hat F)\\|_2^2`). The
    teacher side carries no gradient.

    Args:
        student (Tensor): (N, C, H, W) guided student feature.
        teacher (Tensor): (N, C, H, W) teacher feature.
        reduction (str): ``'mean'``: averaged over every element (divided
            by N*C*H*W), so its scale does not depend on batch or feature
            size. ``'sum'``: Eq. (3) as written, the squared norm of each
            sample's difference (summed over C, H, W), averaged over the
            batch; it grows with the feature size C*H*W. Defaults to
            ``'mean'``.
    """
    if student.shape != teacher.shape:
        raise ValueError(f'hint_loss: student feature {tuple(student.shape)} '
                         f'and teacher feature {tuple(teacher.shape)} differ')
    if reduction not in HINT_REDUCTIONS:
        raise ValueError(f'hint_loss: reduction must be one of '
                         f'{HINT_REDUCTIONS}, got {reduction!r}')
    if reduction == 'sum':
        return F.mse_loss(student, teacher.detach(),
                          reduction='sum') / student.shape[0]
    return F.mse_loss(student, teacher.detach(), reduction='mean')
