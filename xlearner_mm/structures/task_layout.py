"""What an X-Learner model is made of, known in one place.

:class:`TaskLayout` answers, for every part of the package, the questions
that were once worked out separately in each: the tasks, the sources of each
task (those of its per-source heads), each source's heads and class counts,
the stream and reconciliation configs, the state-dict prefixes under which
the parts are saved, the stage a checkpoint comes from, and how losses are
tied to sources for paper Eq. (1). :func:`read_checkpoint` is the one way a
checkpoint file is read.

The layout is built from the model (:meth:`TaskLayout.of_xlearner`), saved
into the ``meta`` of every training checkpoint (``meta['task_layout']``, by
:class:`CheckpointConsistencyHook`) and of every export, and read back from
there (:meth:`TaskLayout.from_meta`) by the export, the consistency checks
and the squeeze teacher.
"""
import copy
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from xlearner_mm.utils.checkpoint_file import check_checkpoint_file
from xlearner_mm.utils.compat import load_checkpoint

# Where a DDP-wrapped model's state dict puts every key.
_DDP_PREFIX = 'module.'


def strip_ddp_prefix(state_dict: Dict[str, Tensor]) -> OrderedDict:
    """``state_dict`` without the ``module.`` that a DDP-wrapped model puts
    before every key."""
    return OrderedDict(
        (k[len(_DDP_PREFIX):] if k.startswith(_DDP_PREFIX) else k, v)
        for k, v in state_dict.items())


def read_checkpoint(path: str, key: str = 'checkpoint',
                    map_location: str = 'cpu') -> dict:
    """The checkpoint at ``path`` as ``dict(state_dict=..., meta=...)``.

    A local file is checked first (missing, truncated or corrupt files raise
    an error naming ``key``, the argument or config key the path came from)
    and read safely (:func:`xlearner_mm.utils.compat.load_checkpoint`:
    ``weights_only=True`` with mmengine's classes allow-listed, on
    torch>=2.4). An URL (``torchvision://resnet50``, ``https://...``) is read
    by mmengine's ``CheckpointLoader``. A bare state dict gets an empty
    ``meta``; DDP's ``module.`` prefix is removed.

    Args:
        path (str): A file or an URL.
        key (str): Where the path came from, named by the errors.
        map_location (str): Defaults to ``'cpu'``.
    """
    if '://' in path:
        from mmengine.runner.checkpoint import CheckpointLoader
        checkpoint = CheckpointLoader.load_checkpoint(
            path, map_location=map_location)
    else:
        if not osp.isfile(path):
            raise FileNotFoundError(f'{key}: {path} does not exist')
        check_checkpoint_file(path, key)
        checkpoint = load_checkpoint(path, map_location)
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{key}: {path} holds a {type(checkpoint).__name__}, '
                        'not a checkpoint dict')
    if 'state_dict' not in checkpoint:
        checkpoint = dict(state_dict=checkpoint, meta={})
    return dict(
        checkpoint,
        state_dict=strip_ddp_prefix(checkpoint['state_dict']),
        meta=checkpoint.get('meta') or {})


def without_init_cfg(cfg):
    """A module config without its ``init_cfg`` nor those of its
    ``backbone`` and ``stream_overrides``: they name what a training run
    started from, and would load it over trained weights."""
    if not isinstance(cfg, dict):
        return cfg
    cfg = {k: copy.deepcopy(v) for k, v in cfg.items() if k != 'init_cfg'}
    if isinstance(cfg.get('backbone'), dict):
        cfg['backbone'] = without_init_cfg(cfg['backbone'])
    if isinstance(cfg.get('stream_overrides'), dict):
        cfg['stream_overrides'] = {
            t: without_init_cfg(o)
            for t, o in cfg['stream_overrides'].items()
        }
    return cfg


def _plain(value):
    """``value`` with mmengine's ConfigDicts and tuples as plain dicts and
    lists, which ``torch.load(weights_only=True)`` reads."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class TaskLayout:
    """The tasks, sources, heads, streams and checkpoint keys of a model.

    Examples:
        >>> layout = model.layout  # an XLearner or a MultiTaskDistiller
        >>> layout.tasks, layout.sources
        (('cls', 'det'), {'cls': ('imagenet', 'inat'), 'det': ('coco', )})
        >>> layout.stream_prefix('det')
        'backbone.streams.det.'
        >>> hard_sharing = model.layout  # ExpandedBackbone(shared=True)
        >>> hard_sharing.streams, hard_sharing.stream_of('det')
        (('shared', ), 'shared')
        >>> meta['task_layout'] = layout.to_dict()  # what checkpoints hold
        >>> TaskLayout.from_meta(meta) == layout
        True

    Args:
        tasks (Sequence[str]): The tasks, in the order of the streams.
        sources (dict[str, Sequence[str]], optional): The sources of each
            task: those of its per-source heads, or the task alone when its
            model has one ordinary head. None where unknown (a checkpoint
            written before layouts were saved).
        classes (dict, optional): ``{task: {source: {config key:
            num_classes}}}`` of every head (and RoI sub-head) of each source.
        per_source (dict[str, bool], optional): Whether a task's model has
            ``MultiSource*Head`` heads (one head per source) or one head for
            all its data.
        backbone (dict, optional): The :class:`ExpandedBackbone` config,
            without ``init_cfg``. Its ``shared`` says whether the tasks have
            a stream each (X-Learner) or share one (Hard-sharing).
        neck (dict, optional): The :class:`ReconciliationNeck` config, None
            for a model without reconciliation.
        student (dict, optional): Squeeze Stage: the student config.
        stage (str): ``'expansion'`` or ``'squeeze'``.
    """
    # State-dict prefixes of the parts, by model.
    BACKBONE = 'backbone.'  # XLearner's expanded backbone; stock models'
    STREAMS = 'backbone.streams.'  # XLearner: + '<stream>.'
    # The name of the one stream of a Hard-sharing backbone; otherwise each
    # task's stream is named by the task.
    SHARED_STREAM = 'shared'
    NECK = 'neck.'  # XLearner's reconciliation layers
    RECONCILERS = 'neck.reconcilers.'  # + '<task>.': the layers into task t
    TASK_MODELS = 'task_models.'  # XLearner: + '<task>.'
    STUDENT = 'student.'  # MultiTaskDistiller's squeezed backbone
    GUIDANCE = 'guidance.'  # MultiTaskDistiller: + '<task>.'
    # Keys of the codebases' model configs (and attributes of the built
    # models) that can hold heads, and the sub-heads with classes of their own.
    HEAD_KEYS = ('head', 'decode_head', 'auxiliary_head', 'roi_head',
                 'bbox_head')
    SUB_HEAD_KEYS = ('bbox_head', 'mask_head')
    STAGES = ('expansion', 'squeeze')
    META_KEY = 'task_layout'

    def __init__(self,
                 tasks: Sequence[str],
                 sources: Optional[Dict[str, Sequence[str]]] = None,
                 classes: Optional[Dict[str, dict]] = None,
                 per_source: Optional[Dict[str, bool]] = None,
                 backbone: Optional[dict] = None,
                 neck: Optional[dict] = None,
                 student: Optional[dict] = None,
                 stage: str = 'expansion') -> None:
        if stage not in self.STAGES:
            raise ValueError(f'stage must be one of {self.STAGES}, got {stage!r}')
        self.tasks = tuple(tasks)
        self.sources = None if sources is None else {
            t: tuple(sources[t]) for t in self.tasks
        }
        self.classes = classes
        self.per_source = per_source
        self.backbone = _plain(without_init_cfg(backbone))
        self.neck = _plain(without_init_cfg(neck))
        self.student = _plain(without_init_cfg(student))
        self.stage = stage

    # ---- built from a model, saved in and read from checkpoint meta ----
    @classmethod
    def of_xlearner(cls, task_models: Dict[str, object], backbone: dict,
                    neck: Optional[dict]) -> 'TaskLayout':
        """The layout of an :class:`XLearner` with these built task models
        and the configs of its expanded backbone and neck."""
        heads = {task: cls._heads_of(task, m) for task, m in task_models.items()}
        return cls(
            tasks=list(task_models),
            sources={t: list(classes) for t, (classes, _) in heads.items()},
            classes={t: classes for t, (classes, _) in heads.items()},
            per_source={t: per_source for t, (_, per_source) in heads.items()},
            backbone=backbone,
            neck=neck)

    @classmethod
    def _heads_of(cls, task: str, model) -> Tuple[dict, bool]:
        """``({source: {config key: num_classes}}, per_source)`` of a task
        model: the sources of its ``MultiSource*Head`` heads (which must
        agree), or the task alone for ordinary heads."""
        per_source, single = OrderedDict(), {}
        for key in cls.HEAD_KEYS:
            head = getattr(model, key, None)
            if head is None:
                continue
            cfg_key = f'model.task_models.{task}.{key}'
            names = getattr(head, 'source_names', None)
            if names is None:
                single.update(cls._num_classes(head, cfg_key))
                continue
            if per_source and list(per_source) != list(names):
                raise ValueError(
                    f'The per-source heads of task "{task}" name different '
                    f'sources: {list(per_source)} and {list(names)} ({cfg_key})')
            for source in names:
                per_source.setdefault(source, {}).update(cls._num_classes(
                    head.heads[source], f'{cfg_key}.heads.{source}'))
        if not per_source:
            return {task: single}, False
        return dict(per_source), True

    @classmethod
    def _num_classes(cls, head, cfg_key: str) -> Dict[str, int]:
        """``{config key: num_classes}`` of a head and of its sub-heads."""
        found = {}
        if isinstance(getattr(head, 'num_classes', None), int):
            found[f'{cfg_key}.num_classes'] = head.num_classes
        for sub_key in cls.SUB_HEAD_KEYS:
            sub = getattr(head, sub_key, None)
            if sub is None:
                continue
            if hasattr(sub, '__len__'):  # cascade stages: ModuleList
                for i, stage in enumerate(sub):
                    found.update(
                        cls._num_classes(stage, f'{cfg_key}.{sub_key}[{i}]'))
            else:
                found.update(cls._num_classes(sub, f'{cfg_key}.{sub_key}'))
        return found

    def squeezed(self, student: dict) -> 'TaskLayout':
        """The layout of a Squeeze model distilling this Expansion model
        into ``student``."""
        layout = copy.deepcopy(self)
        layout.stage, layout.student = 'squeeze', _plain(
            without_init_cfg(student))
        return layout

    def to_dict(self) -> dict:
        """Plain python values, for checkpoint ``meta``."""
        return _plain(dict(
            tasks=self.tasks,
            sources=self.sources,
            classes=self.classes,
            per_source=self.per_source,
            backbone=self.backbone,
            neck=self.neck,
            student=self.student,
            stage=self.stage))

    @classmethod
    def from_meta(cls, meta: dict) -> Optional['TaskLayout']:
        """The layout saved in a checkpoint's or an export's ``meta``; None
        when it has none (files written before layouts were saved). An
        expanded-backbone export of that time (``meta['model']``) is read
        too."""
        saved = meta.get(cls.META_KEY)
        if isinstance(saved, dict):
            return cls(**saved)
        legacy = meta.get('model')
        if isinstance(legacy, dict) and legacy.get('backbone'):
            return cls(
                tasks=meta.get('checkpoint_tasks') or meta.get('tasks'),
                sources=None,
                backbone=legacy['backbone'],
                neck=legacy.get('neck'))
        return None

    @classmethod
    def from_state_dict(cls, state_dict: dict, path: str) -> 'TaskLayout':
        """What the keys alone tell: the stage and the tasks (for checkpoints
        without a saved layout)."""
        stage = cls.stage_of(state_dict, path)
        prefix = cls.STREAMS if stage == 'expansion' else cls.GUIDANCE
        return cls(tasks=cls._tasks_under(state_dict, prefix), stage=stage)

    def __eq__(self, other) -> bool:
        return isinstance(other, TaskLayout) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (f'TaskLayout(stage={self.stage!r}, tasks={self.tasks}, '
                f'sources={self.sources})')

    # ---- what the parts of the package ask ----
    @property
    def num_sources(self) -> int:
        """N of Eq. (1): the number of sources of all tasks."""
        return sum(len(s) for s in self.sources.values())

    @staticmethod
    def stream_map(tasks: Sequence[str],
                   shared: bool = False) -> 'OrderedDict[str, str]':
        """``{task: stream}``: the stream each task runs on, named by the
        task, or :attr:`SHARED_STREAM` for every task of a Hard-sharing
        backbone (``shared``). What :class:`ExpandedBackbone` builds."""
        return OrderedDict(
            (task, TaskLayout.SHARED_STREAM if shared else task)
            for task in tasks)

    @property
    def shared(self) -> bool:
        """Whether every task runs on one stream (Hard-sharing)."""
        return bool((self.backbone or {}).get('shared'))

    @property
    def streams(self) -> Tuple[str, ...]:
        """The names of the expanded backbone's streams, in order."""
        return tuple(dict.fromkeys(
            self.stream_map(self.tasks, self.shared).values()))

    def stream_of(self, task: str) -> str:
        """The name of the stream task t runs on."""
        if task not in self.tasks:
            raise KeyError(f'No task "{task}": the tasks are '
                           f'{list(self.tasks)}')
        return self.stream_map(self.tasks, self.shared)[task]

    def tasks_on(self, stream: str) -> Tuple[str, ...]:
        """The tasks whose data train the stream (all tasks for a shared
        one)."""
        return tuple(t for t in self.tasks if self.stream_of(t) == stream)

    def stream_prefix(self, task: str) -> str:
        """The state-dict prefix of the stream task t runs on."""
        return f'{self.STREAMS}{self.stream_of(task)}.'

    def stream_config(self, task: str) -> Optional[dict]:
        """The config of task t's stream (the common one with the stream's
        ``stream_overrides``), without ``init_cfg``; None where unknown."""
        if not self.backbone or not isinstance(
                self.backbone.get('backbone'), dict):
            return None
        overrides = (self.backbone.get('stream_overrides') or {}).get(
            self.stream_of(task))
        return dict(self.backbone['backbone'], **(overrides or {}))

    def differences(self, other: 'TaskLayout', what: str, other_what: str,
                    sources: bool = True) -> List[str]:
        """How ``other`` (e.g. a checkpoint's layout) differs from this one
        in tasks, streams, reconciliation and (where both know them and
        ``sources``) sources, one line per difference."""
        problems = []
        if self.tasks != other.tasks:
            problems.append(f'tasks: {list(self.tasks)} in {what}, '
                            f'{list(other.tasks)} in {other_what}')
        elif sources and self.sources is not None and other.sources is not None:
            problems += [
                f'sources of task {task!r}: {list(self.sources[task])} in '
                f'{what}, {list(other.sources[task])} in {other_what}'
                for task in self.tasks
                if self.sources[task] != other.sources[task]
            ]
        if self.tasks == other.tasks and self.streams != other.streams:
            problems.append(f'streams: {list(self.streams)} in {what}, '
                            f'{list(other.streams)} in {other_what}')
        if (self.neck is None) != (other.neck is None):
            problems.append(
                f'reconciliation: {"none" if self.neck is None else "a neck"} '
                f'in {what}, {"none" if other.neck is None else "a neck"} in '
                f'{other_what}')
        return problems

    # ---- losses and sources (paper Eq. 1) ----
    # The name of task t's loss (l_t of Eq. 1) among its logged values:
    # ``<task>.task_loss``.
    TASK_LOSS = 'task_loss'

    @staticmethod
    def source_loss_name(source: str, name: str) -> str:
        """The name under which a per-source head reports a source's loss."""
        return f'{source}.{name}'

    @staticmethod
    def task_log_name(task: str, name: str) -> str:
        """The name under which a model logs task t's value ``name`` (a loss
        of its stock model, :attr:`TASK_LOSS`, a hint loss):
        ``<task>.<name>``, e.g. ``det.coco_a.loss_cls``."""
        return f'{task}.{name}'

    @staticmethod
    def split_log_name(name: str) -> Optional[Tuple[str, ...]]:
        """The parts of a name made by :meth:`task_log_name`, task first:
        ``('det', 'coco_a', 'loss_cls')`` for ``det.coco_a.loss_cls``, and
        the parts of the stock models' own dotted names after it (mmseg's
        ``decode.`` in ``seg.decode.ade.loss_ce``). None for a value of no
        task: mmengine's ``lr``, ``time``, ..., Eq. (1)'s ``loss``, and the
        validation metrics, which the multi-task loops name
        ``<source>/<metric>``."""
        if '/' in name or '.' not in name:
            return None
        return tuple(name.split('.'))

    @staticmethod
    def is_loss_name(name: str) -> bool:
        """Whether a logged value is a loss (mmengine's rule: its name has
        ``loss``); the others (``acc``, ``acc_seg``) are only logged."""
        return 'loss' in name

    def loss_owner(self, name: str) -> Tuple[str, Optional[str]]:
        """``(task, source)`` of a loss named ``<task>.<...>`` by
        :class:`XLearner`; source is None for a loss that all of the task's
        sources share (e.g. the class-agnostic RPN, an X-Learner++ hint)."""
        task, *rest = self.split_log_name(name)
        sources = self.sources[task]
        if len(sources) == 1:
            return task, sources[0]
        return task, next((p for p in rest if p in sources), None)

    def loss_weight(self, name: str) -> float:
        """The weight of a loss in its task's loss :math:`\\ell_t`: a
        per-source loss counts ``1 / N_t`` (the mean over the task's N_t
        sources), a shared loss once."""
        task, source = self.loss_owner(name)
        return 1.0 if source is None else 1.0 / len(self.sources[task])

    # ---- checkpoints ----
    @classmethod
    def _tasks_under(cls, state_dict: dict, prefix: str) -> List[str]:
        """Distinct ``<task>`` of the keys ``<prefix><task>.*``, in key order."""
        tasks = []
        for key in state_dict:
            if key.startswith(prefix):
                task = key[len(prefix):].split('.', 1)[0]
                if task not in tasks:
                    tasks.append(task)
        return tasks

    @classmethod
    def stream_tasks(cls, state_dict: dict) -> List[str]:
        """The stream names of the expanded backbone in an Expansion state
        dict: its tasks, or :attr:`SHARED_STREAM` (Hard-sharing)."""
        return cls._tasks_under(state_dict, cls.STREAMS)

    @classmethod
    def stage_of(cls, state_dict: dict, path: str) -> str:
        """``'squeeze'`` or ``'expansion'`` from the keys; errors name the
        file."""
        has_student = any(k.startswith(cls.STUDENT) for k in state_dict)
        has_streams = any(k.startswith(cls.STREAMS) for k in state_dict)
        if has_student and has_streams:
            raise ValueError(f'{path} has both "{cls.STUDENT}*" (Squeeze) and '
                             f'"{cls.STREAMS}*" (Expansion) keys')
        if has_student or has_streams:
            return 'squeeze' if has_student else 'expansion'
        prefixes = sorted({k.split('.', 1)[0] for k in state_dict})
        raise ValueError(
            f'Cannot tell the stage of {path}: it has neither "{cls.STUDENT}*" '
            f'keys (Squeeze Stage distiller) nor "{cls.STREAMS}*" keys '
            f'(Expansion Stage XLearner); its top-level key prefixes are '
            f'{prefixes}')

    @classmethod
    def expansion_state(cls, state_dict: dict) -> OrderedDict:
        """The expanded backbone's and the neck's entries of an XLearner
        state dict: what makes :math:`F^t` (the task models' heads may
        differ, e.g. other label spaces when fine-tuning)."""
        return OrderedDict((k, v) for k, v in strip_ddp_prefix(state_dict).items()
                           if k.startswith((cls.BACKBONE, cls.NECK)))

    @classmethod
    def read_expanded(cls, path: str, key: str = 'checkpoint'
                      ) -> Tuple['TaskLayout', OrderedDict]:
        """``(layout, weights)`` of the expanded backbone and reconciliation
        neck in a whole expanded export (``export_backbone(ckpt, out)``
        without ``task``) or in an Expansion checkpoint, pruned
        (X-Learner_p) or not; ``weights`` are the ``backbone.*`` and
        ``neck.*`` entries, which :meth:`build_expanded` takes.

        Args:
            path (str): The file or URL.
            key (str): Where the path came from, named by the errors.
        """
        found = read_checkpoint(path, key)
        meta, state_dict = found['meta'], found['state_dict']
        exported = 'source_checkpoint' in meta and 'stage' in meta
        if exported and (meta['stage'] != 'expansion'
                         or meta.get('task') is not None or 'resnet' in meta):
            raise ValueError(
                f'{key}: {path} is a plain backbone export (stage '
                f'{meta["stage"]!r}, task {meta.get("task")!r}), not a whole '
                'expanded one: load it into a stock ResNet with '
                "init_cfg=dict(type='Pretrained', checkpoint=...)")
        if not exported and cls.stage_of(state_dict, path) != 'expansion':
            raise ValueError(
                f'{key}: {path} is a Squeeze checkpoint: export its student '
                '(tools/export_backbone.py) and load that into a stock ResNet')
        layout = cls.from_meta(meta)
        if layout is None or not layout.backbone:
            raise ValueError(
                f'{key}: {path} has no saved layout, so the config of its '
                'expanded backbone is unknown: export it again with its '
                'training config (tools/export_backbone.py CKPT OUT --config '
                'CONFIG)')
        return layout, cls.expansion_state(state_dict)

    @staticmethod
    def strip(state_dict: dict, prefix: str) -> Dict[str, Tensor]:
        """The entries under ``prefix``, with the prefix removed."""
        return {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }

    # ---- building the parts that make F^t ----
    def build_expanded(self):
        """The expanded backbone and reconciliation neck of this layout, as
        :class:`XLearner` builds them (:func:`build_expanded`).

        They are built in the ``xlearner_mm`` scope, where their configs
        were written (a stream ``type='HalfResNet'`` names xlearner_mm's),
        also from a stock config of another default scope."""
        from mmengine.registry import DefaultScope
        if not self.backbone:
            raise ValueError(f'The layout of tasks {list(self.tasks)} has no '
                             'expanded-backbone config')
        with DefaultScope.overwrite_default_scope('xlearner_mm'):
            return build_expanded(
                dict(self.backbone, type='ExpandedBackbone',
                     tasks=list(self.tasks)),
                None if self.neck is None else dict(
                    self.neck, type='ReconciliationNeck'))


def build_expanded(backbone: dict, neck: Optional[dict]) -> tuple:
    """``(ExpandedBackbone, ReconciliationNeck or None)`` from their configs;
    the neck's ``in_channels`` and ``strides`` are read from the backbone
    (so configs need not repeat them), and a single task has no neck. A
    Hard-sharing backbone (``shared``) refuses a neck: its tasks share one
    stream, so there is nothing to reconcile."""
    from xlearner_mm.registry import MODELS
    backbone = MODELS.build(backbone)
    if neck is not None and backbone.shared:
        raise ValueError(
            'model.backbone.shared=True runs every task on one stream '
            '(Hard-sharing), which leaves nothing to reconcile: set '
            f'model.neck=None (got a {neck.get("type")})')
    if neck is None or len(backbone.tasks) < 2:
        return backbone, None
    neck = copy.deepcopy(neck)
    neck.setdefault('in_channels', backbone.out_channels)
    neck.setdefault('strides', backbone.out_strides)
    return backbone, MODELS.build(neck)
