import copy
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout

# How ``combine`` joins the tasks' F^t at a level.
COMBINES = {
    'concat': lambda feats: torch.cat(feats, dim=1),
    'sum': lambda feats: torch.stack(feats).sum(dim=0),
    'mean': lambda feats: torch.stack(feats).mean(dim=0),
}


@MODELS.register_module()
class PretrainedExpandedBackbone(BaseModule):
    """A pre-trained expanded model (sub-backbones + reconciliation layers)
    as the backbone of a stock mmdet / mmseg / mmpretrain config.

    It evaluates what is not a plain ResNet: the whole Expansion model
    (X-Learner before its Squeeze Stage), X-Learner_p's pruned expanded
    model and X-Learner_r's expanded HalfResNet-50 model. ``checkpoint`` is
    a whole expanded export (``tools/export_backbone.py CKPT OUT`` without
    ``--task``) or an Expansion checkpoint itself (pruned or not); the
    :class:`TaskLayout` saved in it rebuilds the :class:`ExpandedBackbone`
    and :class:`ReconciliationNeck` (:meth:`TaskLayout.read_expanded`), and
    the weights are loaded strictly when the module is built.

    Output, level by level (``out_indices`` of the D levels):

    - ``task='det'``: :math:`F^{det}` (paper Eq. 2), the feature the task's
      heads were trained on: task t's stream widths (ResNet-50 streams:
      256, 512, 1024, 2048; HalfResNet-50: 192, 352, 736, 1440).
    - ``combine='concat'``: every task's :math:`F^t` concatenated, the sum
      of the tasks' widths (two ResNet-50 tasks: 512, 1024, 2048, 4096).
    - ``combine='sum'`` / ``'mean'``: their sum / mean; the tasks must have
      the same widths, which are the widths of the output.

    ``out_channels`` holds the output widths. Parameters
    (``configs/xlearner/expansion_r50.py``, see ``tools/count_params.py``):
    52.83 M in all, of which ``task='det'`` trains 50.18 M (both streams and
    the 3.16 M layers into det; the 2.66 M layers into cls get no gradient
    and are frozen), ``task='cls'`` 49.68 M and ``combine`` all 52.83 M.
    Reconciliation inputs are not detached here (``detach=False``): the
    downstream model fine-tunes the expanded model as one network, so the
    other streams learn through the layers into the output task.

    Examples:
        >>> # in a stock config, e.g. mmdet's faster-rcnn_r50_fpn_1x_voc0712.py
        >>> custom_imports = dict(imports=['xlearner_mm'])
        >>> model = dict(
        ...     backbone=dict(
        ...         _delete_=True,
        ...         type='xlearner_mm.PretrainedExpandedBackbone',
        ...         checkpoint='work_dirs/export/expanded.pth',
        ...         task='det'),
        ...     neck=dict(in_channels=[256, 512, 1024, 2048]))

    Args:
        checkpoint (str): The whole expanded export or Expansion checkpoint.
        task (str, optional): Output this task's :math:`F^t`.
        combine (str, optional): Or join all tasks': ``'concat'``, ``'sum'``
            or ``'mean'``. Exactly one of ``task`` and ``combine`` is given.
        out_indices (Sequence[int]): Levels returned. Defaults to all four.
        stream_cfg (dict, optional): Merged into every sub-backbone's config,
            e.g. ``dict(frozen_stages=1)`` as stock mmdet R50 configs do.
        norm_eval (bool): Keep every BN layer (streams and reconciliation) in
            eval mode while training, as stock mmdet ResNets do
            (``norm_eval=True``). Defaults to False.
        detach (bool): Detach the reconciliation inputs as in pre-training.
            Defaults to False.
        pretrained (str, optional): What mmseg's ``EncoderDecoder`` passes
            from a stock ``model.pretrained``; ignored (with a log line): the
            weights are ``checkpoint``'s.
    """

    def __init__(self,
                 checkpoint: str,
                 task: Optional[str] = None,
                 combine: Optional[str] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 stream_cfg: Optional[dict] = None,
                 norm_eval: bool = False,
                 detach: bool = False,
                 pretrained: Optional[str] = None) -> None:
        super().__init__()
        if (task is None) == (combine is None):
            raise ValueError(
                'model.backbone (PretrainedExpandedBackbone): give exactly one '
                f'of task (one task\'s F^t) and combine {tuple(COMBINES)}, '
                f'got task={task!r}, combine={combine!r}')
        if combine is not None and combine not in COMBINES:
            raise ValueError(f'model.backbone.combine must be one of '
                             f'{tuple(COMBINES)}, got {combine!r}')
        if pretrained is not None:
            print_log(
                f'model.pretrained={pretrained!r} is ignored: the weights of '
                'PretrainedExpandedBackbone are those of its checkpoint '
                f'{checkpoint}', logger='current')
        layout, state_dict = TaskLayout.read_expanded(
            checkpoint, 'model.backbone.checkpoint')
        if task is not None and task not in layout.tasks:
            raise ValueError(
                f'model.backbone.task={task!r} is not among the tasks '
                f'{list(layout.tasks)} of {checkpoint}')
        self.checkpoint = checkpoint
        self.task, self.combine = task, combine
        self.norm_eval = norm_eval
        self.backbone, self.neck = self._build(layout, stream_cfg, detach)
        # Strict: a half-loaded expanded model would train downstream from
        # partly random weights without another sign.
        self.load_state_dict(state_dict, strict=True)
        # The enclosing model's init_weights() re-initialises the children
        # that are not marked initialised.
        self.is_init = True
        self.tasks = layout.tasks
        self.out_tasks = self.tasks if task is None else (task, )
        # Without reconciliation, F^t is task t's stream alone.
        self.run_tasks = self.tasks if self.neck is not None else \
            self.out_tasks
        self._freeze_unused()
        self.out_indices = tuple(out_indices)
        self.out_channels = self._out_channels()

    @staticmethod
    def _build(layout: TaskLayout, stream_cfg: Optional[dict],
               detach: bool) -> tuple:
        layout = copy.deepcopy(layout)
        layout.backbone['backbone'].update(stream_cfg or {})
        if layout.neck is not None:
            layout.neck['detach_inputs'] = detach
        return layout.build_expanded()

    def _freeze_unused(self) -> None:
        """What no output reads gets no gradient; frozen, it is not trained
        and DDP need not search for unused parameters."""
        used = {self.backbone.task_streams[t] for t in self.run_tasks}
        for name, stream in self.backbone.streams.items():
            if name not in used:  # a shared stream is used by every task
                stream.requires_grad_(False)
        if self.neck is not None:
            for task in set(self.tasks) - set(self.out_tasks):
                self.neck.reconcilers[task].requires_grad_(False)

    def _out_channels(self) -> Tuple[int, ...]:
        widths = self.backbone.out_channels
        per_level = [[widths[t][i] for t in self.out_tasks]
                     for i in self.out_indices]
        if self.combine == 'concat':
            return tuple(sum(c) for c in per_level)
        if any(len(set(c)) > 1 for c in per_level):
            raise ValueError(
                f'model.backbone.combine={self.combine!r} needs the same '
                f'widths in every task, got {widths}; use combine=\'concat\' '
                'or one task')
        return tuple(c[0] for c in per_level)

    def task_features(self, x: Tensor) -> Dict[str, Tuple[Tensor, ...]]:
        """``{t: (F_1^t, ..., F_D^t)}`` of the output tasks."""
        feats = self.backbone(x, tasks=self.run_tasks)
        if self.neck is None:
            return feats
        return {t: self.neck(feats, t) for t in self.out_tasks}

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(N, 3, H, W) -> the levels of ``out_indices``, each
        (N, out_channels[i], H / s_i, W / s_i)."""
        feats = self.task_features(x)
        if self.task is not None:
            levels = feats[self.task]
        else:
            levels = [
                COMBINES[self.combine]([feats[t][i] for t in self.out_tasks])
                for i in range(len(feats[self.out_tasks[0]]))
            ]
        return tuple(levels[i] for i in self.out_indices)

    def train(self, mode: bool = True) -> 'PretrainedExpandedBackbone':
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
