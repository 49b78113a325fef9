import copy
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule, ModuleDict
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout

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


@contextmanager
def running_stats_kept(module: nn.Module) -> Iterator[None]:
    """Run ``module`` with its norm layers' running statistics left as they
    are: train-mode layers still normalise with the batch's statistics, but
    what they add to their running mean, variance and batch count is
    undone afterwards."""
    norms = [
        m for m in module.modules() if isinstance(m, _BatchNorm)
        and m.training and m.track_running_stats
    ]
    saved = [(m.running_mean.clone(), m.running_var.clone(),
              m.num_batches_tracked.clone()) for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (mean, var, count) in zip(norms, saved):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)


@MODELS.register_module()
class ExpandedBackbone(BaseModule):
    """The T task-specific sub-backbones of X-Learner's Expansion Stage.

    Paper Sec. 3.2: one sub-backbone :math:`\\mathcal{E}^t` per task, each
    trained on that task's sources. The reconciliation layers that join them
    live in :class:`ReconciliationNeck`; this module only runs the streams.

    With ``shared=True`` it is the paper's Hard-sharing baseline (Tab. 2, 3,
    6) instead: one stream, named ``'shared'``, that every task's batch goes
    through, so every task's loss trains it. The stream names come from
    :meth:`TaskLayout.stream_map`.

    Examples:
        >>> backbone = dict(
        ...     type='ExpandedBackbone',
        ...     backbone=dict(type='mmdet.ResNet', depth=50,
        ...                   out_indices=(0, 1, 2, 3)),
        ...     shared=False,  # True: Hard-sharing, with model.neck=None
        ...     update_bn_on_other_tasks=True)

    Args:
        tasks (Sequence[str]): Task names, e.g. ``('cls', 'det', 'seg')``.
        backbone (dict): Config of one sub-backbone, used for every task,
            e.g. ``dict(type='mmdet.ResNet', depth=50, out_indices=(0, 1, 2, 3))``.
            Any backbone returning a tuple of D feature maps works.
        stream_overrides (dict, optional): ``{stream: dict}`` merged into
            ``backbone`` for that stream only (a stream is named by its task,
            or ``'shared'``), e.g. an ``init_cfg`` that loads the task's
            sub-backbone from a checkpoint. Defaults to None.
        shared (bool): One stream for all tasks (Hard-sharing). Defaults to
            False: one stream per task, as X-Learner expands.
        update_bn_on_other_tasks (bool): Whether a stream that runs on
            another task's batch only to feed the reconciliation layers (under
            ``no_grad``, see :meth:`forward`) updates its BN running
            statistics with those images. The paper does not say. Either
            way the stream normalises with the batch's statistics in training
            (its features are the same); False undoes what such a forward
            adds to the running statistics, so that a stream's statistics
            come from its own task's images only. Defaults to True, what
            running the streams in train mode does: after tau the streams see
            every task's images, and so they do in the Squeeze Stage, where
            the frozen expanded backbone (eval mode, running statistics)
            makes every task's :math:`F^t` from every stream.
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
                 shared: bool = False,
                 update_bn_on_other_tasks: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        tasks = tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(
                f'ExpandedBackbone needs distinct task names, got {tasks}')
        self.tasks = tasks
        self.shared = shared
        self.update_bn_on_other_tasks = update_bn_on_other_tasks
        # {task: stream name}
        self.task_streams = TaskLayout.stream_map(tasks, shared)
        names = list(dict.fromkeys(self.task_streams.values()))
        stream_overrides = stream_overrides or {}
        unknown = set(stream_overrides) - set(names)
        if unknown:
            raise KeyError(
                f'model.backbone.stream_overrides names streams '
                f'{sorted(unknown)}; the streams are {names}')
        # mmengine's ModuleDict passes init_weights() on to the streams, so
        # that their init_cfg (e.g. a Pretrained checkpoint) is applied.
        self.streams = ModuleDict()
        for name in names:
            cfg = copy.deepcopy(backbone)
            cfg.update(copy.deepcopy(stream_overrides.get(name, {})))
            self.streams[name] = MODELS.build(cfg)
        levels = {name: probe_levels(s) for name, s in self.streams.items()}
        self.out_channels = {
            t: levels[s][0] for t, s in self.task_streams.items()}
        self.out_strides = {
            t: levels[s][1] for t, s in self.task_streams.items()}

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
            tasks (Sequence[str], optional): The tasks whose streams run.
                Defaults to all. A shared stream runs once.
            grad_tasks (Sequence[str], optional): The tasks whose streams keep
                their autograd graph. The others run under ``torch.no_grad()``:
                their outputs only feed reconciliation layers, whose inputs
                are detached (paper Sec. 3.2), so recording a graph for them
                would only cost memory; with ``update_bn_on_other_tasks=False``
                they also leave their BN running statistics unchanged.
                Defaults to all of ``tasks``.

        Returns:
            dict[str, tuple[Tensor]]: ``{task: (E_1^t, ..., E_D^t)}``, level i
            of shape (N, C_i^t, H / s_i^t, W / s_i^t).
        """
        tasks = self.tasks if tasks is None else tuple(tasks)
        grad_tasks = tasks if grad_tasks is None else tuple(grad_tasks)
        unknown = [t for t in tasks if t not in self.task_streams]
        if unknown:
            raise KeyError(f'No sub-backbone for task "{unknown[0]}"; the '
                           f'expanded backbone has {list(self.tasks)}')
        grad_streams = {self.task_streams.get(t) for t in grad_tasks}
        outs = {}
        for stream in dict.fromkeys(self.task_streams[t] for t in tasks):
            outs[stream] = self._run(stream, x, stream in grad_streams)
        return {task: outs[self.task_streams[task]] for task in tasks}

    def _run(self, stream: str, x: Tensor,
             grad: bool) -> Tuple[Tensor, ...]:
        """One stream on ``x``, with its autograd graph or, feeding only the
        reconciliation layers, without (and its BN statistics kept unless
        ``update_bn_on_other_tasks``)."""
        module = self.streams[stream]
        with torch.set_grad_enabled(torch.is_grad_enabled() and grad):
            if grad or self.update_bn_on_other_tasks:
                return as_levels(module(x))
            with running_stats_kept(module):
                return as_levels(module(x))
