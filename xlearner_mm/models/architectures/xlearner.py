import copy
from collections import OrderedDict
from typing import Callable, Dict, Optional, Set, Tuple

import torch
from mmengine.model import BaseDataPreprocessor, BaseModel, ModuleDict
from mmengine.logging import print_log
from torch import Tensor, nn

from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout, build_expanded

# XLearner's neck when its config names none.
DEFAULT_NECK = dict(type='ReconciliationNeck')


def task_features(backbone: nn.Module, neck: Optional[nn.Module],
                  inputs: Tensor, task: str) -> Tuple[Tensor, ...]:
    """Task t's :math:`(F_1^t, ..., F_D^t)` on a batch: its stream alone
    without ``neck``; with it, every stream (the others under ``no_grad``)
    and the reconciliation into task t (paper Eq. 2)."""
    if neck is None:
        return backbone(inputs, tasks=(task, ))[task]
    return neck(backbone(inputs, grad_tasks=(task, )), task)


def build_data_preprocessor(task_cfg: dict, cfg_key: str) -> nn.Module:
    """The data preprocessor of a task model config, built alone in the
    task model's scope (its ``_scope_``, or the prefix of its ``type``)."""
    cfg = task_cfg.get('data_preprocessor')
    if not isinstance(cfg, dict):
        raise ValueError(
            f'{cfg_key}.data_preprocessor is not set: it is built without '
            'the task model, so give it explicitly (e.g. '
            "dict(type='DetDataPreprocessor', mean=..., std=...))")
    model_type = task_cfg.get('type')
    scope = task_cfg.get('_scope_') or (
        model_type.split('.', 1)[0]
        if isinstance(model_type, str) and '.' in model_type else None)
    return MODELS.build(dict(cfg, _scope_=scope) if scope else cfg)


@MODELS.register_module()
class TaskStream(nn.Module):
    """Stands in for the backbone of one task's stock model.

    :class:`XLearner` builds each task's model (``mmpretrain.ImageClassifier``,
    ``mmdet.FasterRCNN``, ``mmseg.EncoderDecoder``, ...) with this module as
    its backbone, then binds it to the expanded backbone. The stock model then
    runs unchanged, including its own inference (e.g. mmseg's sliding window),
    and every call to its backbone returns the task's stream :math:`F^t`.

    The expanded backbone is reached through a bound function rather than as
    a submodule, so that its parameters are registered once, under
    :class:`XLearner`, and not again under every task model.

    Args:
        task (str): The task whose stream this is.

    Examples:
        # Not written in configs: XLearner sets the backbone of each task
        # model, e.g. of model.task_models.det, to
        backbone = dict(type='xlearner_mm.TaskStream', task='det')
    """

    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task
        self._features: Optional[Callable[[Tensor, str], tuple]] = None

    def bind(self, features: Callable[[Tensor, str], tuple]) -> None:
        self._features = features

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(N, 3, H, W) images -> task's D levels :math:`(F_1^t, ..., F_D^t)`."""
        if self._features is None:
            raise RuntimeError(
                f'TaskStream("{self.task}") is the backbone placeholder of an '
                'XLearner task model and is not bound to an expanded backbone')
        return self._features(x, self.task)


class MultiTaskDataPreprocessor(BaseDataPreprocessor):
    """Runs each task's batch through that task's own data preprocessor
    (``ClsDataPreprocessor``, ``DetDataPreprocessor``,
    ``SegDataPreprocessor``, ...).

    ``{task: dict(inputs=..., data_samples=...)}`` becomes
    ``dict(inputs={task: Tensor}, data_samples={task: list})``, the form
    :meth:`XLearner.forward` takes (and mmengine's DDP wrapper passes on).

    The task preprocessors are registered here, also where they belong to
    the task models too (:class:`XLearner`), so that mmengine's device moves
    (``BaseModel.to`` sets every preprocessor's device) reach them where
    they are used without the task models (the Squeeze Stage). They have no
    state-dict entries, so nothing is saved twice.

    Args:
        preprocessors (dict[str, BaseDataPreprocessor]): Per task.
    """

    def __init__(self, preprocessors: Dict[str, BaseDataPreprocessor]) -> None:
        super().__init__()
        self.preprocessors = nn.ModuleDict(preprocessors)

    def forward(self, data: dict, training: bool = False) -> dict:
        unknown = set(data) - set(self.preprocessors)
        if unknown:
            raise KeyError(f'Batches for tasks {sorted(unknown)} but the model '
                           f'has tasks {list(self.preprocessors)}')
        inputs, data_samples = {}, {}
        for task, batch in data.items():
            out = self.preprocessors[task](batch, training)
            inputs[task] = out['inputs']
            data_samples[task] = out.get('data_samples')
        return dict(inputs=inputs, data_samples=data_samples)


@MODELS.register_module()
class XLearner(BaseModel):
    """X-Learner's Expansion Stage model (paper Sec. 3.1-3.2, Algorithm 1).

    T sub-backbones (:class:`ExpandedBackbone`) joined by reconciliation
    layers (:class:`ReconciliationNeck`); each task's stream feeds a stock
    model of its codebase whose backbone is replaced by that stream. Sources
    of a task get their own heads through the ``MultiSource*Head`` classes.

    Training takes one batch per task, ``{task: batch}``. Task t's batch runs
    through stream t with autograd; when reconciliation is on, the other
    streams run on the same images under ``no_grad`` to feed the
    reconciliation layers. The loss is paper Eq. (1): the mean over all N
    sources of their task losses. Losses shared by a task's sources (e.g. the
    class-agnostic RPN of a detector) count once per source of the task.

    Algorithm 1: while :attr:`reconcile` is False (the first tau iterations,
    switched by :class:`ReconciliationSwitchHook`) the sub-backbones train
    separately, each on its own task loss (the mean over the task's sources);
    afterwards jointly, with reconciliation and the Eq. (1) average.
    :attr:`reconcile` is Algorithm 1's phase: it starts True (the model after
    tau), so a model without the hook trains jointly on Eq. (1) throughout.
    Without a neck it switches only the loss (the sum of the task losses
    before tau, Eq. (1) after): the "w/o Rec." ablation keeps Algorithm 1's
    phases, and Hard-sharing (``backbone.shared=True``, no neck, no hook) is
    trained on Eq. (1).

    Examples:
        >>> model = dict(
        ...     type='XLearner',
        ...     backbone=dict(type='ExpandedBackbone',
        ...                   backbone=dict(type='mmdet.ResNet', depth=50)),
        ...     neck=dict(type='ReconciliationNeck', out_levels=dict(cls=(3, ))),
        ...     task_models=dict(cls=dict(type='mmpretrain.ImageClassifier',
        ...                               ...),
        ...                      det=dict(type='mmdet.FasterRCNN', ...)),
        ...     hint_phase='always')

    Args:
        backbone (dict): :class:`ExpandedBackbone` config. ``tasks`` defaults
            to the keys of ``task_models``.
        task_models (dict[str, dict]): ``{task: stock model config}``, e.g.
            ``dict(cls=dict(type='mmpretrain.ImageClassifier', ...),
            det=dict(type='mmdet.FasterRCNN', ...))``. Their ``backbone`` key
            is replaced by the task's stream; necks and heads must take the
            stream's channels. Each keeps its own ``data_preprocessor``.
        neck (dict, optional): :class:`ReconciliationNeck` config;
            ``in_channels`` and ``strides`` are filled in from the backbone.
            None trains the sub-backbones without reconciliation (the paper's
            "w/o Rec." ablation). Defaults to ``dict(type='ReconciliationNeck')``.
        hint_teachers (dict[str, dict], optional): X-Learner++ (paper
            Sec. 3.4): ``{task: dict(backbone=..., levels=..., loss_weight=...)}``,
            the :class:`HintTeacher` of a task, a frozen single-task
            single-source pretrained backbone whose features supervise the
            task's stream ``F^t``. Its loss, ``<task>.hint_loss``, is part of
            the task's loss shared by the task's sources (see
            :meth:`parse_losses`). Defaults to None.
        hint_phase (str): When the X-Learner++ hints supervise the streams:
            ``'always'``, or ``'before_tau'`` (only while :attr:`reconcile`
            is False; afterwards ``hint_loss`` is 0). The paper says both
            "besides the original supervision from labels" and "a
            pre-distillation process ... prior to training the expanded
            backbone". Defaults to ``'always'``: the hints join the labels'
            supervision in the whole Expansion Stage, as this model did before
            the option existed; ``'before_tau'`` reads "prior to" literally.
        init_cfg (dict, optional): Defaults to None.

    Examples:
        # configs/_base_/models/xlearner_r50_cls_det.py in outline. Each task
        # model is a stock model config of its codebase, with per-source
        # heads: ``cls_classifier`` is an ``mmpretrain.ImageClassifier``
        # (``_scope_='mmpretrain'``) with a MultiSourceClsHead,
        # ``faster_rcnn`` an ``mmdet.FasterRCNN`` (``_scope_='mmdet'``) with
        # a MultiSourceRoIHead.
        model = dict(
            type='XLearner',
            backbone=dict(
                type='ExpandedBackbone',
                backbone=dict(type='mmdet.ResNet', depth=50,
                              out_indices=(0, 1, 2, 3))),
            neck=dict(type='ReconciliationNeck', groups=32,
                      out_levels=dict(cls=(3, ))),
            task_models=dict(cls=cls_classifier, det=faster_rcnn))
    """
    HINT_PHASES = ('always', 'before_tau')

    def __init__(self,
                 backbone: dict,
                 task_models: Dict[str, dict],
                 neck: Optional[dict] = DEFAULT_NECK,
                 hint_teachers: Optional[Dict[str, dict]] = None,
                 hint_phase: str = 'always',
                 init_cfg: Optional[dict] = None) -> None:
        if not task_models:
            raise ValueError('XLearner needs at least one entry in task_models')
        if hint_phase not in self.HINT_PHASES:
            raise ValueError(f'model.hint_phase must be one of '
                             f'{self.HINT_PHASES}, got {hint_phase!r}')
        tasks = list(task_models)
        backbone = copy.deepcopy(backbone)
        if list(backbone.setdefault('tasks', tasks)) != tasks:
            raise ValueError(
                f'model.backbone.tasks {list(backbone["tasks"])} and the '
                f'tasks of model.task_models {tasks} differ')
        built = OrderedDict()
        for task, cfg in task_models.items():
            cfg = copy.deepcopy(cfg)
            if 'backbone' in cfg:
                print_log(
                    f'model.task_models.{task}.backbone is replaced by the '
                    f'"{task}" stream of the expanded backbone', 'current')
            cfg['backbone'] = dict(type='xlearner_mm.TaskStream', task=task)
            built[task] = MODELS.build(cfg)
        super().__init__(
            data_preprocessor=MultiTaskDataPreprocessor(
                {t: m.data_preprocessor for t, m in built.items()}),
            init_cfg=init_cfg)

        self.tasks = tuple(tasks)
        self.backbone, self.neck = build_expanded(backbone, neck)
        # mmengine's ModuleDict: init_weights() reaches the stock models.
        self.task_models = ModuleDict(built)
        for model in self.task_models.values():
            model.backbone.bind(self.extract_task_feat)
        self.layout = TaskLayout.of_xlearner(
            self.task_models, backbone, neck if self.neck is not None else None)
        self.hints = ModuleDict()
        for task, cfg in (hint_teachers or {}).items():
            if task not in self.tasks:
                raise KeyError(f'model.hint_teachers names task "{task}" '
                               f'that is not among the tasks {tasks}')
            self.hints[task] = MODELS.build(dict(
                dict(type='HintTeacher', task=task,
                     in_channels=self.backbone.out_channels[task],
                     in_strides=self.backbone.out_strides[task]), **cfg))
        self.hint_phase = hint_phase
        # Algorithm 1's phase; ReconciliationSwitchHook sets it from
        # runner.iter. True: the model after tau, also where no hook runs.
        self.reconcile = True

    def task_parameter_names(self) -> Dict[str, Set[str]]:
        """``{task: names}`` (as :meth:`named_parameters` gives them) of the
        parameters that serve task t alone: its stream (unless other tasks
        share it), the reconciliation layers into it, its stock model and its
        X-Learner++ guidance."""
        parts = {task: [self.task_models[task]] for task in self.tasks}
        for stream in self.layout.streams:
            served = self.layout.tasks_on(stream)
            if len(served) == 1:
                parts[served[0]].append(self.backbone.streams[stream])
        for task in self.tasks:
            if self.neck is not None and task in self.neck.reconcilers:
                parts[task].append(self.neck.reconcilers[task])
            if task in self.hints:
                parts[task].append(self.hints[task])
        task_of = {
            id(param): task
            for task, modules in parts.items() for module in modules
            for param in module.parameters()
        }
        names = {task: set() for task in self.tasks}
        for name, param in self.named_parameters():
            if id(param) in task_of:
                names[task_of[id(param)]].add(name)
        return names

    @property
    def with_reconciliation(self) -> bool:
        return self.neck is not None

    def extract_task_feat(self, inputs: Tensor,
                          task: str) -> Tuple[Tensor, ...]:
        """Task t's stream on a batch: :math:`(F_1^t, ..., F_D^t)`.

        Args:
            inputs (Tensor): (N, 3, H, W) images of any task.
            task (str): t.

        Returns:
            tuple[Tensor]: D levels, level i of shape
            (N, C_i^t, H / s_i^t, W / s_i^t).
        """
        return task_features(self.backbone,
                             self.neck if self.reconcile else None, inputs,
                             task)

    def forward(self,
                inputs: Dict[str, Tensor],
                data_samples: Optional[Dict[str, list]] = None,
                mode: str = 'tensor'):
        """Args:
            inputs (dict[str, Tensor]): ``{task: (N_t, 3, H, W) images}``.
            data_samples (dict[str, list], optional): ``{task: samples}``.
            mode (str): ``'loss'`` returns the losses of every task, named
                ``<task>.<loss>``; ``'predict'`` returns the data samples of
                every task (in the order of ``inputs``) with predictions;
                ``'tensor'`` returns ``{task: (F_1^t, ..., F_D^t)}``.
        """
        data_samples = data_samples or {}
        if mode == 'tensor':
            return {t: self.extract_task_feat(x, t) for t, x in inputs.items()}
        if mode == 'loss':
            losses = {}
            for task, x in inputs.items():
                task_losses = self._task_loss(task, x, data_samples[task])
                losses.update({
                    TaskLayout.task_log_name(task, k): v
                    for k, v in task_losses.items()
                })
            return losses
        if mode == 'predict':
            results = []
            for task, x in inputs.items():
                results.extend(self.task_models[task].predict(
                    x, data_samples.get(task)))
            return results
        raise RuntimeError(f'Invalid mode "{mode}"; XLearner supports '
                           '"loss", "predict" and "tensor"')

    def _task_loss(self, task: str, inputs: Tensor,
                   data_samples: list) -> Dict[str, Tensor]:
        """Task t's stock-model losses, plus ``hint_loss`` when the task has
        an X-Learner++ hint teacher. The hint reads the stream's levels
        :math:`F^t` of the stock model's own backbone call (stock models run
        their backbone once per loss), so the stream is not run twice."""
        model = self.task_models[task]
        if task not in self.hints:
            return model.loss(inputs, data_samples)
        if self.hint_phase == 'before_tau' and self.reconcile:
            losses = model.loss(inputs, data_samples)
            losses['hint_loss'] = self.hints[task].idle_loss()
            return losses
        feats = []
        handle = model.backbone.register_forward_hook(
            lambda module, args, out: feats.append(out))
        try:
            losses = model.loss(inputs, data_samples)
        finally:
            handle.remove()
        losses['hint_loss'] = self.hints[task](inputs, feats[0])
        return losses

    def parse_losses(self, losses: Dict[str, torch.Tensor]
                     ) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Average the losses over sources (paper Eq. 1).

        Every entry is logged as it is; ``<task>.task_loss`` is task t's loss
        :math:`\\ell_t` (its per-source losses averaged over its sources,
        plus the losses its sources share, among them the X-Learner++
        ``<task>.hint_loss``), and ``loss`` is what is
        optimised: :math:`\\frac{1}{N}\\sum_t\\sum_n \\ell_{t,n}` once
        reconciliation is on, and :math:`\\sum_t \\ell_t` before (each
        sub-backbone then only receives its own task's gradient, as in
        Algorithm 1's separate updates).
        """
        log_vars = []
        task_loss = {t: 0. for t in self.tasks}
        for name, value in losses.items():
            if isinstance(value, torch.Tensor):
                value = value.mean()
            elif isinstance(value, (list, tuple)) and all(
                    isinstance(v, torch.Tensor) for v in value):
                value = sum(v.mean() for v in value)
            else:
                raise TypeError(f'{name} is not a tensor or list of tensors')
            log_vars.append((name, value))
            if not TaskLayout.is_loss_name(name):
                continue
            task, _ = self.layout.loss_owner(name)
            task_loss[task] = task_loss[task] + self.layout.loss_weight(
                name) * value
        present = [t for t in self.tasks if torch.is_tensor(task_loss[t])]
        if self.reconcile:
            # (1/N) sum_t N_t * l_t = (1/N) sum_t sum_n l_{t,n}
            sources = self.layout.sources
            loss = sum(task_loss[t] * len(sources[t])
                       for t in present) / self.layout.num_sources
        else:
            loss = sum(task_loss[t] for t in present)
        summary = [('loss', loss)] + [
            (TaskLayout.task_log_name(t, TaskLayout.TASK_LOSS), task_loss[t])
            for t in present
        ]
        return loss, OrderedDict(summary + log_vars)
