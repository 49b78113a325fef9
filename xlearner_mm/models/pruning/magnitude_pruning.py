"""Unstructured magnitude pruning of the expanded model (X-Learner_p).

Paper Sec. 3.4: X-Learner_p squeezes the expanded backbone by "a simple
unstructured pruning method referencing [78]" (Liu et al., "Rethinking the
Value of Network Pruning", ICLR 2019) instead of distilling it. That method
(their ``cifar/weight-level`` code) ranks the conv weights by magnitude,
zeroes the smallest ones under one global threshold, and fine-tunes with the
gradients of the zeroed weights masked out. Here the same is done to the
prunable weights of an :class:`XLearner`, by default the conv (and linear)
weights of the sub-backbones and of the reconciliation layers, with the
target "the size of one sub-backbone" (``keep_params='one_stream'``).

Pruning writes zeros into the plain ``weight`` tensors; no
``weight_orig``/``weight_mask`` reparametrization
(``torch.nn.utils.prune``) is used, so the model's ``state_dict`` keeps its
keys and a pruned checkpoint loads into the unpruned model config.
"""
import fnmatch
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from xlearner_mm.structures import TaskLayout

# Conv and linear weights of the sub-backbones and the reconciliation layers.
DEFAULT_PRUNABLE = (f'{TaskLayout.STREAMS}*', f'{TaskLayout.RECONCILERS}*')
# Layers whose ``weight`` is prunable. Biases and normalization layers never
# are: they are few, and zeroing a BN scale removes a whole channel.
PRUNABLE_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                   nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
SCOPES = ('global', 'layer')
KEEP_TARGETS = ('one_stream', )

Masks = Dict[str, Tensor]


def _layer_weights(module: nn.Module) -> 'OrderedDict[str, nn.Parameter]':
    """``{'<module name>.weight': weight}`` of every conv/linear layer."""
    weights = OrderedDict()
    for name, layer in module.named_modules():
        if isinstance(layer, PRUNABLE_LAYERS) and isinstance(
                getattr(layer, 'weight', None), nn.Parameter):
            weights[f'{name}.weight' if name else 'weight'] = layer.weight
    return weights


def _check_patterns(patterns: Sequence[str]) -> None:
    if isinstance(patterns, str) or not patterns:
        raise ValueError('patterns must be a non-empty sequence of parameter '
                         f'name patterns, got {patterns!r}')


def prunable_weights(model: nn.Module,
                     patterns: Sequence[str] = DEFAULT_PRUNABLE
                     ) -> 'OrderedDict[str, nn.Parameter]':
    """The conv/linear weights of ``model`` whose parameter name matches one
    of ``patterns`` (``fnmatch`` style, e.g. ``'backbone.streams.*'``).

    Args:
        model (nn.Module): Unwrapped model (names as in its ``state_dict``).
        patterns (Sequence[str]): Name patterns.

    Returns:
        OrderedDict[str, nn.Parameter]: ``{name: weight}`` in module order;
        a weight shared by several layers appears once.

    Raises:
        ValueError: If no weight matches.
    """
    _check_patterns(patterns)
    weights, seen = OrderedDict(), set()
    for name, weight in _layer_weights(model).items():
        if id(weight) in seen or not any(
                fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        seen.add(id(weight))
        weights[name] = weight
    if not weights:
        raise ValueError(
            f'No conv or linear weight of {type(model).__name__} matches the '
            f'prunable patterns {list(patterns)} (biases and normalization '
            'layers are never pruned)')
    return weights


def stream_weight_count(model: nn.Module) -> int:
    """The number of conv/linear weights of one sub-backbone
    (``model.backbone.streams``), the size ``keep_params='one_stream'``
    prunes the model down to.

    Raises:
        TypeError: If the model has no ``backbone.streams``.
        ValueError: If the streams differ in size (then "one stream" is
            ambiguous: give ``keep_params`` as a number).
    """
    streams = getattr(getattr(model, 'backbone', None), 'streams', None)
    layout = getattr(model, 'layout', None)
    if not isinstance(streams, nn.ModuleDict) or layout is None:
        raise TypeError(
            "keep_params='one_stream' needs an XLearner with an "
            f'ExpandedBackbone (model.backbone.streams); got '
            f'{type(model).__name__}')
    counts = {
        name: sum(w.numel() for w in _layer_weights(streams[name]).values())
        for name in layout.streams
    }
    if len(set(counts.values())) != 1:
        raise ValueError(
            "keep_params='one_stream' is ambiguous: the sub-backbones have "
            f'different numbers of conv/linear weights {counts}; give '
            'keep_params as a number instead')
    return next(iter(counts.values()))


def _apportion(sizes: List[int], keep: int) -> List[int]:
    """Split ``keep`` over layers of ``sizes`` in proportion to their sizes
    (largest-remainder rounding): every layer keeps within one weight of the
    same fraction, and the total is exactly ``keep``."""
    total = sum(sizes)
    exact = [size * keep / total for size in sizes]
    counts = [int(x) for x in exact]
    by_remainder = sorted(
        range(len(sizes)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[:keep - sum(counts)]:
        counts[i] += 1
    return counts


def _top_magnitude_mask(weight: Tensor, keep: int) -> Tensor:
    """Bool mask of ``weight``'s shape with ``keep`` True entries at the
    largest magnitudes (ties broken by ``torch.topk``)."""
    flat = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
    if keep:
        flat[weight.detach().abs().flatten().topk(keep, sorted=False).indices] = True
    return flat.view_as(weight)


class MagnitudePruner:
    """Unstructured magnitude pruning (Liu et al. 2019, weight level).

    The weights of the smallest magnitude are zeroed, either under one
    threshold over all prunable weights (``scope='global'``, Liu et al.'s
    choice: layers lose different fractions) or by the same fraction in every
    layer (``scope='layer'``). The number kept is exact: ``round((1 -
    sparsity) * N)`` of the N prunable weights (global), apportioned over the
    layers to within one weight per layer (layer).

    Args:
        sparsity (float, optional): Fraction of the prunable weights to zero,
            in [0, 1).
        keep_params (str | int, optional): Number of prunable weights to keep
            instead: ``'one_stream'`` keeps as many as one sub-backbone has
            conv/linear weights (the paper's goal: the expanded backbone
            squeezed to one ResNet-50's size), or an int. Exactly one of
            ``sparsity`` and ``keep_params`` is given.
        scope (str): ``'global'`` or ``'layer'``. Defaults to ``'global'``.
        patterns (Sequence[str]): ``fnmatch`` patterns of the prunable
            parameter names; only conv/linear weights among them are pruned.
            Defaults to the sub-backbones and reconciliation layers,
            :data:`DEFAULT_PRUNABLE`.
    """

    def __init__(self,
                 sparsity: Optional[float] = None,
                 keep_params: Optional[Union[str, int]] = None,
                 scope: str = 'global',
                 patterns: Sequence[str] = DEFAULT_PRUNABLE) -> None:
        if (sparsity is None) == (keep_params is None):
            raise ValueError('Give exactly one of sparsity and keep_params, '
                             f'got sparsity={sparsity!r}, '
                             f'keep_params={keep_params!r}')
        if sparsity is not None and not (isinstance(sparsity, (int, float))
                                         and 0 <= sparsity < 1):
            raise ValueError(f'sparsity must be in [0, 1), got {sparsity!r}')
        if keep_params is not None and not (
                keep_params in KEEP_TARGETS or
            (isinstance(keep_params, int) and not isinstance(keep_params, bool)
             and keep_params > 0)):
            raise ValueError(f'keep_params must be one of {KEEP_TARGETS} or a '
                             f'positive int, got {keep_params!r}')
        if scope not in SCOPES:
            raise ValueError(f'scope must be one of {SCOPES}, got {scope!r}')
        _check_patterns(patterns)
        self.sparsity = sparsity
        self.keep_params = keep_params
        self.scope = scope
        self.patterns = tuple(patterns)

    def describe(self) -> dict:
        """The settings, for checkpoint meta and logs."""
        return dict(
            method='magnitude',
            scope=self.scope,
            target_sparsity=self.sparsity,
            keep_params=self.keep_params,
            patterns=list(self.patterns))

    def num_to_keep(self, model: nn.Module, total: int) -> int:
        """How many of the ``total`` prunable weights of ``model`` to keep."""
        if self.sparsity is not None:
            return round((1 - self.sparsity) * total)
        keep = (stream_weight_count(model)
                if self.keep_params == 'one_stream' else self.keep_params)
        if keep > total:
            raise ValueError(
                f'keep_params={self.keep_params!r} asks to keep {keep} '
                f'weights but only {total} match the prunable patterns '
                f'{list(self.patterns)}')
        return keep

    @torch.no_grad()
    def compute_masks(self, model: nn.Module) -> Masks:
        """Masks of the weights to keep, from the current magnitudes.

        Args:
            model (nn.Module): Unwrapped model.

        Returns:
            dict[str, Tensor]: ``{weight name: bool mask}``, each of its
            weight's shape and device; True = kept.
        """
        weights = prunable_weights(model, self.patterns)
        sizes = [w.numel() for w in weights.values()]
        keep = self.num_to_keep(model, sum(sizes))
        if self.scope == 'layer':
            return OrderedDict(
                (name, _top_magnitude_mask(w, k)) for (name, w), k in zip(
                    weights.items(), _apportion(sizes, keep)))
        # One ranking over all prunable weights (Liu et al.'s global
        # threshold, with the count made exact under ties).
        scores = torch.cat(
            [w.detach().abs().flatten().to(torch.float32) for w in weights.values()])
        flat = _top_magnitude_mask(scores, keep)
        return OrderedDict(
            (name, part.view_as(w).to(w.device, copy=True))
            for (name, w), part in zip(weights.items(), flat.split(sizes)))

    def prune(self, model: nn.Module) -> Masks:
        """Compute the masks and zero the pruned weights; returns the masks."""
        masks = self.compute_masks(model)
        apply_masks(model, masks)
        return masks


def masked_weights(model: nn.Module,
                   masks: Masks) -> List[Tuple[nn.Parameter, Tensor]]:
    """``(weight, mask)`` for each mask, the mask on the weight's device,
    after checking names and shapes. The pairs stay valid while the model's
    parameters do, so a training loop resolves them once."""
    params = dict(model.named_parameters())
    pairs = []
    for name, mask in masks.items():
        if name not in params:
            raise KeyError(f'Pruning mask for "{name}", which is no parameter '
                           f'of {type(model).__name__}')
        if mask.shape != params[name].shape:
            raise ValueError(f'Pruning mask for "{name}" has shape '
                             f'{tuple(mask.shape)}, the weight '
                             f'{tuple(params[name].shape)}')
        pairs.append((params[name], mask.to(params[name].device)))
    return pairs


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the pruned entries (mask False) of the masked weights in place."""
    for weight, mask in masked_weights(model, masks):
        weight.mul_(mask)


def mask_gradients(model: nn.Module, masks: Masks) -> List[RemovableHandle]:
    """Zero the gradients of the pruned entries during backward, as Liu et
    al.'s fine-tuning does before each optimizer step.

    The optimizer then sees no gradient for pruned weights: with SGD (plain,
    momentum, weight decay) and Adam(W) they stay exactly zero and their
    momentum stays zero, and they do not count in gradient-norm clipping.
    Gradient hooks run before DDP's all-reduce, so every rank averages
    masked gradients.

    Returns:
        list[RemovableHandle]: Remove them to stop masking.
    """
    return [
        weight.register_hook(lambda grad, m=mask: grad * m)
        for weight, mask in masked_weights(model, masks)
    ]


def count_kept(weights: Sequence[Tensor]) -> List[int]:
    """The number of non-zero entries of each weight (one device sync)."""
    return torch.stack([w.count_nonzero() for w in weights]).tolist()


def _stats(prunable: int, kept: int) -> dict:
    return dict(prunable=prunable, kept=kept, sparsity=1 - kept / prunable)


def _group(name: str) -> str:
    """The report group of a weight: the first three components of its
    module name, i.e. one group per sub-backbone (``backbone.streams.cls``)
    and one per task for the reconciliation layers into it
    (``neck.reconcilers.det``)."""
    return '.'.join(name.split('.')[:-1][:3]) or name


@torch.no_grad()
def sparsity_report(model: nn.Module,
                    patterns: Sequence[str] = DEFAULT_PRUNABLE) -> dict:
    """The real sparsity of the prunable weights: zeros counted in the
    weights themselves (not in masks).

    Returns:
        dict: ``prunable`` (number of prunable weights), ``kept`` (non-zero
        ones), ``sparsity`` (1 - kept / prunable), and the same three per
        ``groups`` (see :func:`_group`) and per ``layers`` (weight name).
        Plain python numbers, so ``torch.load(weights_only=True)`` reads it
        from checkpoint meta.
    """
    weights = prunable_weights(model, patterns)
    kept = count_kept(list(weights.values()))
    layers = OrderedDict(
        (name, _stats(w.numel(), k)) for (name, w), k in zip(weights.items(), kept))
    groups = OrderedDict()
    for name, stats in layers.items():
        group = groups.setdefault(_group(name), [0, 0])
        group[0] += stats['prunable']
        group[1] += stats['kept']
    total = sum(s['prunable'] for s in layers.values())
    return dict(
        _stats(total, sum(kept)),
        groups=OrderedDict((g, _stats(*c)) for g, c in groups.items()),
        layers=layers)


def format_report(report: dict) -> str:
    """The overall and per-group lines of a :func:`sparsity_report`."""
    lines = [f'{"group":<28} {"prunable":>12} {"kept":>12} {"sparsity":>9}']
    for group, s in list(report['groups'].items()) + [('all prunable', report)]:
        lines.append(f'{group:<28} {s["prunable"]:>12,} {s["kept"]:>12,} '
                     f'{s["sparsity"]:>9.2%}')
    return '\n'.join(lines)
