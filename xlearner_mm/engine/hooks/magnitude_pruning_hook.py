"""X-Learner_p's Squeeze Stage: prune the expanded model, then fine-tune it
with the expansion loss while the pruned weights stay zero."""
from collections import OrderedDict
from typing import Optional, Sequence, Union

import torch
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH
from mmengine.logging import print_log

from xlearner_mm.models.pruning import (DEFAULT_PRUNABLE, MagnitudePruner,
                                        apply_masks, count_kept,
                                        format_report, mask_gradients,
                                        masked_weights, prunable_weights,
                                        sparsity_report)
from xlearner_mm.registry import HOOKS
from xlearner_mm.utils import unwrap_model


@HOOKS.register_module()
class MagnitudePruningHook(Hook):
    """Prune the model loaded by ``load_from`` by weight magnitude and keep
    it pruned while it is fine-tuned (paper Sec. 3.4, X-Learner_p).

    * ``before_train``: the weights loaded from ``load_from`` (an Expansion
      checkpoint) are pruned by :class:`MagnitudePruner`. When the run is
      resumed (``runner.iter`` is the loaded checkpoint's iteration), the
      masks saved in that checkpoint are restored instead: re-ranking the
      fine-tuned weights could choose other ones. A pruned checkpoint given
      as ``load_from`` (not resumed) is pruned again to the target; its
      zeros rank lowest, so the same target keeps the same weights.
    * During training, as in Liu et al.'s fine-tuning, the gradients of the
      pruned weights are zeroed in backward (tensor hooks, before DDP's
      all-reduce and before the optimizer step). SGD's weight decay
      (wd * 0) and momentum (built from zero gradients, zero since pruning)
      then leave pruned weights at exactly zero, their momentum buffers stay
      zero, and they do not count in gradient clipping. ``after_train_iter``
      re-applies the masks to the weights anyway: that alone keeps them zero
      for any optimizer (the optimizer state of a pruned entry is never used
      once its weight is overwritten), and it makes the saved checkpoints
      pruned whatever the optimizer does.
    * ``before_save_checkpoint``: the masks go into
      ``checkpoint['pruning_masks']`` (``{weight name: bool tensor}``) and
      the real sparsity into ``checkpoint['meta']['pruning']``. The
      ``state_dict`` holds the plain weights with their zeros (no
      ``weight_orig``/``weight_mask`` reparametrization), so every checkpoint
      is a permanent pruned model that loads into the unpruned config.

    The sparsity report (overall, per sub-backbone and per task's
    reconciliation layers) is logged at the start, written to the
    visualizer's scalars as ``pruning/<group>``, kept in the message hub's
    info ``pruning``, and the overall sparsity of the weights is logged with
    the training losses as ``sparsity`` (measured from the weights every
    iteration).

    Priority ``ABOVE_NORMAL``: the masks are re-applied before the hooks that
    read the weights after an iteration (EMA at ``NORMAL``, the checkpoint at
    ``VERY_LOW``).

    Args:
        sparsity (float, optional): Fraction of the prunable weights to zero.
        keep_params (str | int, optional): ``'one_stream'`` (prune the
            expanded model down to one sub-backbone's number of conv/linear
            weights) or a number of weights to keep. Exactly one of
            ``sparsity`` and ``keep_params``.
        scope (str): ``'global'`` (one threshold) or ``'layer'`` (the same
            sparsity in every layer). Defaults to ``'global'``.
        patterns (Sequence[str]): ``fnmatch`` patterns of the prunable
            parameter names. Defaults to the sub-backbones and the
            reconciliation layers.

    Examples:
        # configs/xlearner/prune_r50.py: the Expansion checkpoint pruned to
        # one ResNet-50's number of conv weights, then fine-tuned with
        # reconciliation on from the start
        load_from = 'work_dirs/expansion_r50/iter_150000.pth'
        custom_hooks = [
            dict(type='RandomStateHook'),
            dict(type='ReconciliationSwitchHook', tau=0),
            dict(type='MagnitudePruningHook', keep_params='one_stream',
                 scope='global'),
        ]
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 sparsity: Optional[float] = None,
                 keep_params: Optional[Union[str, int]] = None,
                 scope: str = 'global',
                 patterns: Sequence[str] = DEFAULT_PRUNABLE) -> None:
        self.pruner = MagnitudePruner(
            sparsity=sparsity,
            keep_params=keep_params,
            scope=scope,
            patterns=patterns)
        self.masks: Optional[OrderedDict] = None
        # (pruning masks or None, iteration) of the last checkpoint loaded.
        self._loaded: Optional[tuple] = None
        self._grad_handles: list = []
        # (weight, mask) of every prunable weight, resolved in before_train.
        self._masked: list = []

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the checkpoint's masks until it is known to be resumed."""
        self._loaded = (checkpoint.get('pruning_masks'),
                        checkpoint.get('meta', {}).get('iter'))

    def _restore_masks(self, model, masks: Optional[dict]) -> OrderedDict:
        if masks is None:
            raise RuntimeError(
                'The resumed checkpoint has no `pruning_masks`: it was not '
                'saved by MagnitudePruningHook. Start the pruning run with '
                '`load_from` set to it and `resume=False`.')
        expected = prunable_weights(model, self.pruner.patterns)
        if set(masks) != set(expected):
            raise ValueError(
                'The pruning masks of the resumed checkpoint cover other '
                'weights than the prunable patterns '
                f'{list(self.pruner.patterns)} match: '
                f'{len(set(masks) - set(expected))} extra, '
                f'{len(set(expected) - set(masks))} missing')
        return OrderedDict((name, masks[name].to(weight.device))
                           for name, weight in expected.items())

    def before_train(self, runner) -> None:
        """Prune the loaded model, or restore the masks of a resumed run."""
        model = unwrap_model(runner.model)
        if self._loaded is None:
            raise RuntimeError(
                'MagnitudePruningHook prunes a trained model, but no '
                'checkpoint was loaded: set `load_from` to an Expansion '
                'checkpoint.')
        masks, ckpt_iter = self._loaded
        self._loaded = None
        if runner.iter > 0 and runner.iter == ckpt_iter:
            self.masks = self._restore_masks(model, masks)
            apply_masks(model, self.masks)
            action = f'restored the pruning masks of iteration {runner.iter}'
        else:
            self.masks = self.pruner.prune(model)
            action = f'pruned the loaded model ({self.pruner.describe()})'
        self._grad_handles = mask_gradients(model, self.masks)
        self._masked = masked_weights(model, self.masks)
        report = sparsity_report(model, self.pruner.patterns)
        print_log(f'MagnitudePruningHook {action}:\n{format_report(report)}',
                  logger='current')
        runner.message_hub.update_info('pruning', report)
        scalars = {f'pruning/{g}': s['sparsity']
                   for g, s in report['groups'].items()}
        scalars['pruning/sparsity'] = report['sparsity']
        runner.visualizer.add_scalars(scalars, step=runner.iter)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Zero the pruned weights again and log the real sparsity (that of
        :func:`sparsity_report`: the masks cover exactly the prunable
        weights)."""
        with torch.no_grad():
            for weight, mask in self._masked:
                weight.mul_(mask)
        weights = [weight for weight, _ in self._masked]
        prunable = sum(weight.numel() for weight in weights)
        runner.message_hub.update_scalar(
            'train/sparsity', 1 - sum(count_kept(weights)) / prunable)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the masks and the sparsity report in the checkpoint."""
        if self.masks is None:
            return
        checkpoint['pruning_masks'] = OrderedDict(
            (name, mask.cpu()) for name, mask in self.masks.items())
        checkpoint.setdefault('meta', {})['pruning'] = dict(
            self.pruner.describe(),
            **sparsity_report(
                unwrap_model(runner.model), self.pruner.patterns))

    def after_train(self, runner) -> None:
        """Stop masking gradients."""
        for handle in self._grad_handles:
            handle.remove()
        self._grad_handles = []
