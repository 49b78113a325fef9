import math
from typing import Optional, Tuple

from mmdet.models.backbones import ResNet

from xlearner_mm.registry import MODELS


def scaled_width(width: int, ratio: float, divisor: int) -> int:
    """``width * ratio`` rounded to the nearest multiple of ``divisor`` (at
    least ``divisor``): 64 / sqrt(2) = 45.25 -> 48, 128 / sqrt(2) = 90.51 ->
    88."""
    return max(divisor, int(round(width * ratio / divisor)) * divisor)


@MODELS.register_module()
class HalfResNet(ResNet):
    """mmdet's ResNet with every width scaled by ``width_ratio`` (the
    sub-backbone of X-Learner_r, paper Sec. 3.4 and Sec. 4.4, Obs. 3).

    "HalfResNet-50 is a sub-backbone with only 1/sqrt(2) of the original
    ResNet-50 channels": parameters scale with the square of the width, so
    two of them have about the parameters of one ResNet-50. Each stage's
    bottleneck width ``base_channels * 2**i`` and the stem's
    ``stem_channels`` are multiplied by ``width_ratio`` and rounded to the
    nearest multiple of ``width_divisor``. For ResNet-50:

    ===========  =================  =================  ===========
    part         ResNet-50          HalfResNet-50      exact / sqrt(2)
    ===========  =================  =================  ===========
    stem         64                 48                 45.25
    stage 1-4    64, 128, 256, 512  48, 88, 184, 360   45.25, 90.51, 181.02, 362.04
    outputs      256 ... 2048       192, 352, 736, 1440
    parameters   23.51 M            11.80 M (50.2%)
    ===========  =================  =================  ===========

    The stem is scaled too (a plain V1b stem of 48 channels): a 64-channel
    stem would add parameters to no purpose, since layer1 reads it through
    its first 1x1 conv anyway. The keys are mmdet's ResNet keys, so
    :class:`ZooPretrained` and the exports read it like any ResNet.

    Examples:
        >>> backbone = dict(type='xlearner_mm.HalfResNet', depth=50,
        ...                 out_indices=(0, 1, 2, 3))
        >>> MODELS.build(backbone).stage_widths
        (48, 88, 184, 360)

    Args:
        depth (int): ResNet depth (18, 34, 50, 101, 152).
        base_channels (int): The first stage's width of the full-size
            ResNet. Defaults to 64.
        stem_channels (int, optional): The full-size stem width. Defaults to
            ``base_channels``.
        width_ratio (float): Defaults to 1 / sqrt(2).
        width_divisor (int): Widths are multiples of it. Defaults to 8.
        **kwargs: mmdet ResNet's other arguments (``out_indices``,
            ``norm_cfg``, ``frozen_stages``, ``init_cfg``, ...).
    """

    def __init__(self,
                 depth: int,
                 base_channels: int = 64,
                 stem_channels: Optional[int] = None,
                 width_ratio: float = 1 / math.sqrt(2),
                 width_divisor: int = 8,
                 **kwargs) -> None:
        # Set before ResNet.__init__, which calls make_res_layer per stage.
        self.stage_widths: Tuple[int, ...] = tuple(
            scaled_width(base_channels * 2**i, width_ratio, width_divisor)
            for i in range(4))
        self.width_ratio = width_ratio
        super().__init__(
            depth,
            base_channels=base_channels,
            stem_channels=scaled_width(stem_channels or base_channels,
                                       width_ratio, width_divisor),
            **kwargs)
        self.feat_dim = self.block.expansion * self.stage_widths[
            len(self.stage_blocks) - 1]

    def make_res_layer(self, **kwargs):
        """Stage i (``len(self.res_layers)`` while ResNet.__init__ builds it)
        at its scaled width, reading the scaled output of stage i - 1
        (ResNet passes the full-size widths)."""
        stage = len(self.res_layers)
        kwargs['planes'] = self.stage_widths[stage]
        if stage:
            kwargs['inplanes'] = self.stage_widths[stage - 1] * \
                self.block.expansion
        return super().make_res_layer(**kwargs)
