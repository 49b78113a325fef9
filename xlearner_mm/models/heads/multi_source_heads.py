"""Heads that give every data source its own head inside a stock model.

X-Learner's sources keep their own label spaces (paper Sec. 3.1): ImageNet's
1000 classes and iNat2021's 10000 classes share the classification stream but
not the classifier. Each class here stands in for the head of a stock
mmpretrain / mmseg / mmdet model, owns one ordinary head per source, and
routes every sample to the head of the source it came from (the ``source``
field that :class:`MultiSourceDataset` writes into each sample's metainfo).
The stock model (``ImageClassifier``, ``EncoderDecoder``, ``FasterRCNN``)
keeps doing everything else, so its training and inference code is reused
unchanged.

Loss names get the source as a prefix (``imagenet.loss``,
``decode.ade20k.loss_ce``; :meth:`TaskLayout.source_loss_name`), by which
:class:`XLearner`'s :class:`TaskLayout` averages the losses over sources
(paper Eq. 1).
"""
import copy
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseModule, ModuleDict
from torch import Tensor

from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout

# Fills the class channels a source does not have when sources with
# different numbers of classes are predicted in one batch: far below any real
# logit, finite so that resizing the logits cannot produce NaN, and
# representable in fp16.
_ABSENT_CLASS_LOGIT = -1e4


def _source_of(metainfo: dict, sources: Sequence[str]) -> str:
    source = metainfo.get('source')
    if source is None:
        if len(sources) == 1:
            return sources[0]
        raise KeyError(
            'A sample has no "source" in its metainfo, so it cannot be routed '
            f'to one of the heads {list(sources)}; wrap the datasets in '
            'MultiSourceDataset, which tags every sample with its source')
    if source not in sources:
        raise KeyError(f'Sample from source "{source}" has no head; heads '
                       f'exist for {list(sources)}')
    return source


def _merged(defaults: dict, overrides: dict) -> dict:
    """``overrides`` on top of ``defaults``, merging nested dicts."""
    out = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _in_own_scope(cfg: dict) -> dict:
    """Build a head named with a codebase prefix (``mmseg.FCNHead``) in that
    codebase's scope, so that what it builds inside (its losses, samplers)
    resolves there and not in the caller's scope."""
    obj_type = cfg.get('type')
    if isinstance(obj_type, str) and '.' in obj_type:
        cfg.setdefault('_scope_', obj_type.split('.', 1)[0])
    return cfg


def _take(feats: Sequence[Tensor], index: Tensor) -> tuple:
    return tuple(f[index] for f in feats)


class MultiSourceHeadMixin:
    """Builds one head per source and groups a batch by source.

    Args:
        heads (dict[str, dict]): ``{source: head config}``.
        shared (dict, optional): Config merged under every head's.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 heads: Dict[str, dict],
                 shared: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self._build_heads(heads, shared)

    def _build_heads(self, heads: Dict[str, dict],
                     shared: Optional[dict] = None) -> None:
        if not heads:
            raise ValueError(f'{type(self).__name__} needs at least one head')
        # mmengine's ModuleDict passes init_weights() on to each head, so
        # that the stock heads' own init_cfg (e.g. Normal(std=0.01)) runs.
        self.heads = ModuleDict(
            (source, MODELS.build(_in_own_scope(_merged(shared or {}, cfg))))
            for source, cfg in heads.items())

    @property
    def source_names(self) -> List[str]:
        return list(self.heads)

    def _group(self, metainfos: Sequence[dict],
               device: torch.device) -> Dict[str, Tensor]:
        """``{source: indices of its samples}``, in the order of the heads."""
        groups = OrderedDict((s, []) for s in self.heads)
        for idx, meta in enumerate(metainfos):
            groups[_source_of(meta, self.source_names)].append(idx)
        return OrderedDict(
            (s, torch.tensor(idx, dtype=torch.long, device=device))
            for s, idx in groups.items() if idx)

    def _single_head(self, what: str):
        if len(self.heads) != 1:
            raise RuntimeError(
                f'{type(self).__name__}.{what} cannot route samples without '
                f'their data samples; heads exist for {self.source_names}')
        return next(iter(self.heads.values()))

    @staticmethod
    def _prefix(source: str, losses: dict) -> dict:
        return {
            TaskLayout.source_loss_name(source, k): v
            for k, v in losses.items()
        }

    def _loss_per_source(self, feats: tuple, data_samples: list,
                         loss: Callable) -> dict:
        """``loss(head, feats, samples)`` for each source's share of the
        batch, with the losses named ``<source>.<loss>``."""
        losses, present = {}, []
        for source, index in self._group([ds.metainfo for ds in data_samples],
                                         feats[0].device).items():
            present.append(source)
            losses.update(self._prefix(source, loss(
                self.heads[source], _take(feats, index),
                [data_samples[i] for i in index.tolist()])))
        return self._touch_absent_heads(losses, present)

    def _touch_absent_heads(self, losses: dict, present: list) -> dict:
        """Add zero times the parameters of every head whose source has no
        sample in this batch to the first loss.

        The sampler composes the source mix of the global batch, so one
        rank's batch can miss a source (a per-GPU detection batch of 2 and 3
        sources always does); that head then gets no gradient on this rank,
        which DDP with ``find_unused_parameters=False`` refuses at the next
        iteration. The zero term gives it a zero gradient instead, and
        changes no loss value: the source's loss counts on the ranks whose
        batch holds it.
        """
        absent = [s for s in self.heads if s not in present]
        if not absent:
            return losses
        first = next((k for k, v in losses.items()
                      if 'loss' in k and torch.is_tensor(v)), None)
        if first is None:
            return losses
        zero = sum(p.sum() for s in absent for p in self.heads[s].parameters()
                   if p.requires_grad) * 0.
        losses[first] = losses[first] + zero
        return losses

    @staticmethod
    def _restore_order(groups: Dict[str, Tensor], results: Dict[str, list],
                       num: int) -> list:
        ordered = [None] * num
        for source, index in groups.items():
            for i, result in zip(index.tolist(), results[source]):
                ordered[i] = result
        return ordered


@MODELS.register_module()
class MultiSourceClsHead(MultiSourceHeadMixin, BaseModule):
    """Per-source classification heads for ``mmpretrain.ImageClassifier``.

    Args:
        heads (dict[str, dict]): ``{source: head config}``, e.g.
            ``dict(imagenet=dict(type='mmpretrain.LinearClsHead',
            num_classes=1000, in_channels=2048), ...)``.
        shared (dict, optional): Config common to all heads; each entry of
            ``heads`` is merged on top of it (nested dicts merged), e.g.
            ``shared=dict(type='mmpretrain.LinearClsHead', in_channels=2048)``
            with ``heads=dict(imagenet=dict(num_classes=1000))``.
            Defaults to None.
        init_cfg (dict, optional): Defaults to None.

    Examples:
        # model.task_models.cls.head of configs/xlearner/expansion_r50.py (in
        # the task model's scope, mmpretrain, this class takes its prefix)
        head = dict(
            type='xlearner_mm.MultiSourceClsHead',
            shared=dict(type='LinearClsHead', in_channels=2048, topk=(1, 5),
                        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
            heads=dict(imagenet=dict(num_classes=1000),
                       inat2021=dict(num_classes=10000),
                       places365=dict(num_classes=365)))
    """

    def forward(self, feats: tuple) -> Tensor:
        return self._single_head('forward')(feats)

    def pre_logits(self, feats: tuple) -> Tensor:
        return self._single_head('pre_logits').pre_logits(feats)

    def loss(self, feats: tuple, data_samples: list, **kwargs) -> dict:
        """Each source's samples through its head; losses named
        ``<source>.<loss>``. ``feats``: tuple of (N, C) tensors."""
        return self._loss_per_source(
            feats, data_samples,
            lambda head, x, samples: head.loss(x, samples, **kwargs))

    def predict(self, feats: tuple, data_samples: Optional[list] = None,
                **kwargs) -> list:
        if data_samples is None:
            return self._single_head('predict').predict(feats, None, **kwargs)
        groups = self._group([ds.metainfo for ds in data_samples],
                             feats[-1].device)
        results = {
            source: self.heads[source].predict(
                _take(feats, index),
                [data_samples[i] for i in index.tolist()], **kwargs)
            for source, index in groups.items()
        }
        return self._restore_order(groups, results, len(data_samples))


@MODELS.register_module()
class MultiSourceDecodeHead(MultiSourceHeadMixin, BaseModule):
    """Per-source decode heads for ``mmseg.EncoderDecoder``.

    Works as ``decode_head`` or ``auxiliary_head``. Sources may have different
    numbers of classes: when one prediction batch mixes them, the logits are
    padded to the largest number of classes with a very low value, so the
    stock post-processing (argmax per image) is unchanged. Validate one source
    per dataloader so that each metric sees its own classes.

    Args:
        heads (dict[str, dict]): ``{source: decode head config}``, e.g.
            ``dict(ade20k=dict(type='mmseg.FCNHead', num_classes=150, ...))``.
        shared (dict, optional): Config common to all heads, merged under
            each entry of ``heads``. Defaults to None.
        init_cfg (dict, optional): Defaults to None.

    Examples:
        # model.task_models.seg.decode_head of configs/demo/expansion_demo.py
        # (in the task model's scope, mmseg, this class takes its prefix)
        decode_head = dict(
            type='xlearner_mm.MultiSourceDecodeHead',
            shared=dict(
                type='FCNHead', in_channels=128, in_index=3, channels=32,
                num_convs=1, concat_input=False, dropout_ratio=0.1,
                norm_cfg=dict(type='BN', requires_grad=True),
                align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                 loss_weight=1.0)),
            heads=dict(ade=dict(num_classes=4)))
    """

    def _build_heads(self, heads: Dict[str, dict],
                     shared: Optional[dict] = None) -> None:
        super()._build_heads(heads, shared)
        align = {h.align_corners for h in self.heads.values()}
        if len(align) != 1:
            raise ValueError('All per-source decode heads must agree on '
                             f'align_corners, got {align}')
        # Attributes mmseg.EncoderDecoder reads from its decode head.
        self.align_corners = align.pop()
        self.num_classes = max(h.num_classes for h in self.heads.values())
        self.out_channels = max(h.out_channels for h in self.heads.values())
        self.threshold = next(iter(self.heads.values())).threshold

    def forward(self, inputs: tuple) -> Tensor:
        return self._single_head('forward')(inputs)

    def loss(self, inputs: tuple, batch_data_samples: list,
             train_cfg: dict) -> dict:
        """``inputs``: tuple of (N, C, H, W) levels; losses named
        ``<source>.<loss>``."""
        return self._loss_per_source(
            inputs, batch_data_samples,
            lambda head, x, samples: head.loss(x, samples, train_cfg))

    def predict(self, inputs: tuple, batch_img_metas: List[dict],
                test_cfg: dict) -> Tensor:
        """Returns (N, max classes, H, W) logits."""
        groups = self._group(batch_img_metas, inputs[0].device)
        logits = None
        for source, index in groups.items():
            out = self.heads[source].predict(
                _take(inputs, index),
                [batch_img_metas[i] for i in index.tolist()], test_cfg)
            if logits is None:
                logits = out.new_full(
                    (len(batch_img_metas), self.out_channels, *out.shape[2:]),
                    _ABSENT_CLASS_LOGIT)
            logits[index, :out.shape[1]] = out
        return logits


@MODELS.register_module()
class MultiSourceRoIHead(MultiSourceHeadMixin, BaseModule):
    """Per-source RoI heads (box classifier and regressor) for mmdet's
    two-stage detectors.

    The detector's FPN and RPN (class-agnostic) stay shared by all detection
    sources; each source gets its own RoI head with its own classes.

    Args:
        heads (dict[str, dict]): ``{source: RoI head config}``, e.g.
            ``dict(coco=dict(type='mmdet.StandardRoIHead', bbox_roi_extractor=...,
            bbox_head=dict(..., num_classes=80)), ...)``.
        shared (dict, optional): Config common to all heads, merged under
            each entry of ``heads`` (typically the whole RoI head but the
            bbox head's ``num_classes``). Defaults to None.
        train_cfg (dict, optional): Filled in by the detector (rcnn part).
        test_cfg (dict, optional): Filled in by the detector (rcnn part).
        init_cfg (dict, optional): Defaults to None.

    Examples:
        In the task model's scope (mmdet) this class takes its prefix; from
        ``model.task_models.det`` of ``configs/xlearner/expansion_r50.py``:

        roi_head = dict(
            type='xlearner_mm.MultiSourceRoIHead',
            shared=dict(
                type='StandardRoIHead',
                bbox_roi_extractor=dict(
                    type='SingleRoIExtractor', out_channels=256,
                    roi_layer=dict(type='RoIAlign', output_size=7,
                                   sampling_ratio=0),
                    featmap_strides=[4, 8, 16, 32]),
                bbox_head=dict(
                    type='Shared2FCBBoxHead', in_channels=256,
                    fc_out_channels=1024, roi_feat_size=7,
                    reg_class_agnostic=False,
                    bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                                    target_means=[0., 0., 0., 0.],
                                    target_stds=[0.1, 0.1, 0.2, 0.2]),
                    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                  loss_weight=1.0),
                    loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
            heads=dict(coco=dict(bbox_head=dict(num_classes=80)),
                       objects365=dict(bbox_head=dict(num_classes=365))))
    """

    def __init__(self,
                 heads: Dict[str, dict],
                 shared: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            heads,
            _merged(shared or {}, dict(train_cfg=train_cfg, test_cfg=test_cfg)),
            init_cfg=init_cfg)

    @property
    def with_bbox(self) -> bool:
        return all(h.with_bbox for h in self.heads.values())

    @property
    def with_mask(self) -> bool:
        return all(h.with_mask for h in self.heads.values())

    def forward(self, x: tuple, rpn_results_list: list,
                batch_data_samples: Optional[list] = None) -> tuple:
        return self._single_head('forward')(x, rpn_results_list,
                                            batch_data_samples)

    def _split(self, x: tuple, rpn_results_list: list,
               batch_data_samples: list):
        for source, index in self._group(
            [ds.metainfo for ds in batch_data_samples], x[0].device).items():
            idx = index.tolist()
            yield source, index, _take(x, index), [
                rpn_results_list[i] for i in idx
            ], [batch_data_samples[i] for i in idx]

    def loss(self, x: tuple, rpn_results_list: list,
             batch_data_samples: list) -> dict:
        """``x``: tuple of (N, C, H, W) FPN levels; losses named
        ``<source>.<loss>``."""
        losses, present = {}, []
        for source, _, feats, proposals, samples in self._split(
                x, rpn_results_list, batch_data_samples):
            present.append(source)
            losses.update(self._prefix(
                source, self.heads[source].loss(feats, proposals, samples)))
        return self._touch_absent_heads(losses, present)

    def predict(self, x: tuple, rpn_results_list: list,
                batch_data_samples: list, rescale: bool = False) -> list:
        groups, results = OrderedDict(), {}
        for source, index, feats, proposals, samples in self._split(
                x, rpn_results_list, batch_data_samples):
            groups[source] = index
            results[source] = self.heads[source].predict(
                feats, proposals, samples, rescale=rescale)
        return self._restore_order(groups, results, len(batch_data_samples))
