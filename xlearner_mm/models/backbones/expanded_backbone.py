import copy
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule, ModuleDict
from torch import Tensor, nn

from xlearner_mm.registry import MODELS

# Side of the dummy image used to read a backbone's level widths and strides.
_PROBE_SIZE = 64


def as_levels(outs) -> Tuple[Tensor, ...]:
    """A backbone's output as a tuple of levels (one Tensor is one level)."""
    return (outs, ) if isinstance(outs, Tensor) else tuple(outs)


@torch.no_grad()
def probe_levels(backbone: nn.Module) -> Tuple[tuple, tuple]:
    """(channels, strides) of ``backbone``'s levels, read from one forward of
    a dummy image in eval mode (its BN statistics stay untouched), so that
    configs need not repeat them."""
    was_training = backbone.training
    backbone.eval()
    outs = as_levels(backbone(torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE)))
    backbone.train(was_training)
    return (tuple(out.shape[1] for out in outs),
            tuple(_PROBE_SIZE // out.shape[-1] for out in outs))


@MODELS.register_module()
class ExpandedBackbone(BaseModule):
    """The T task-specific sub-backbones of X-Learner's Expansion Stage.

    Paper Sec. 3.2: one sub-backbone :math:`\\mathcal{E}^t` per task, each
    trained on that task's sources. The reconciliation layers that join them
    live in :class:`ReconciliationNeck`; this module only runs the streams.

    Args:
        tasks (Sequence[str]): Task names, e.g. ``('cls', 'det', 'seg')``.
        backbone (dict): Config of one sub-backbone, used for every task,
            e.g. ``dict(type='mmdet.ResNet', depth=50, out_indices=(0, 1, 2, 3))``.
            Any backbone returning a tuple of D feature maps works.
        stream_overrides (dict, optional): ``{task: dict}`` merged into
            ``backbone`` for that task only, e.g. an ``init_cfg`` that loads
            the task's sub-backbone from a checkpoint. Defaults to None.
        init_cfg (dict, optional): Initialization config. Defaults to None.

    Attributes:
        out_channels (dict[str, tuple[int]]): Channels :math:`C_i^t` of each
            task's D levels.
        out_strides (dict[str, tuple[int]]): Output stride of each level.

    Examples:
        # model.backbone of configs/xlearner/expansion_r50.py (XLearner fills
        # in ``tasks``), with the det stream loaded from a detector
        backbone = dict(
            type='ExpandedBackbone',
            backbone=dict(
                type='mmdet.ResNet', depth=50, out_indices=(0, 1, 2, 3),
                norm_cfg=dict(type='BN', requires_grad=True), style='pytorch'),
            stream_overrides=dict(det=dict(init_cfg=dict(
                type='Pretrained', checkpoint='faster_rcnn.pth',
                prefix='backbone.'))))
    """

    def __init__(self,
                 tasks: Sequence[str],
                 backbone: dict,
                 stream_overrides: Optional[Dict[str, dict]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        tasks = tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(
                f'ExpandedBackbone needs distinct task names, got {tasks}')
        stream_overrides = stream_overrides or {}
        unknown = set(stream_overrides) - set(tasks)
        if unknown:
            raise KeyError(f'stream_overrides names tasks {sorted(unknown)} '
                           f'that are not among the tasks {list(tasks)}')
        self.tasks = tasks
        # mmengine's ModuleDict passes init_weights() on to the streams, so
        # that their init_cfg (e.g. a Pretrained checkpoint) is applied.
        self.streams = ModuleDict()
        for task in tasks:
            cfg = copy.deepcopy(backbone)
            cfg.update(copy.deepcopy(stream_overrides.get(task, {})))
            self.streams[task] = MODELS.build(cfg)
        levels = {task: probe_levels(s) for task, s in self.streams.items()}
        self.out_channels = {t: c for t, (c, _) in levels.items()}
        self.out_strides = {t: s for t, (_, s) in levels.items()}

    @property
    def num_levels(self) -> Dict[str, int]:
        """D, the number of output levels of each task's stream."""
        return {task: len(c) for task, c in self.out_channels.items()}

    def forward(self,
                x: Tensor,
                tasks: Optional[Sequence[str]] = None,
                grad_tasks: Optional[Sequence[str]] = None
                ) -> Dict[str, Tuple[Tensor, ...]]:
        """Run the requested streams on one batch.

        Args:
            x (Tensor): Images of shape (N, 3, H, W).
            tasks (Sequence[str], optional): Streams to run. Defaults to all.
            grad_tasks (Sequence[str], optional): Streams whose autograd graph
                is kept. The others run under ``torch.no_grad()``: their
                outputs only feed reconciliation layers, whose inputs are
                detached (paper Sec. 3.2), so recording a graph for them
                would only cost memory. Defaults to all of ``tasks``.

        Returns:
            dict[str, tuple[Tensor]]: ``{task: (E_1^t, ..., E_D^t)}``, level i
            of shape (N, C_i^t, H / s_i^t, W / s_i^t).
        """
        tasks = self.tasks if tasks is None else tuple(tasks)
        grad_tasks = tasks if grad_tasks is None else tuple(grad_tasks)
        feats = {}
        for task in tasks:
            if task not in self.streams:
                raise KeyError(f'No sub-backbone for task "{task}"; the '
                               f'expanded backbone has {list(self.tasks)}')
            with torch.set_grad_enabled(torch.is_grad_enabled()
                                        and task in grad_tasks):
                outs = self.streams[task](x)
            feats[task] = as_levels(outs)
        return feats
