"""Save the random generators of every rank so that resuming is exact."""
import logging
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH
from mmengine.logging import print_log

from xlearner_mm.registry import HOOKS


def _get_random_state() -> dict:
    """The states of the python, numpy, torch CPU and current CUDA device
    generators, in types that ``torch.load(weights_only=True)`` reads."""
    bit_generator, keys, pos, has_gauss, cached_gaussian = \
        np.random.get_state(legacy=True)
    return dict(
        python=random.getstate(),
        numpy=(bit_generator, keys.tolist(), pos, has_gauss, cached_gaussian),
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state()
        if torch.cuda.is_available() else None)


def _set_random_state(state: dict) -> None:
    """Restore what :func:`_get_random_state` returned."""
    random.setstate(state['python'])
    bit_generator, keys, pos, has_gauss, cached_gaussian = state['numpy']
    np.random.set_state((bit_generator, np.array(keys, dtype=np.uint32), pos,
                         has_gauss, cached_gaussian))
    # Resuming loads checkpoints onto the training device, but generator
    # states must be CPU byte tensors.
    torch.set_rng_state(state['torch'].cpu())
    if state['cuda'] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'].cpu())


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make resumed training draw the same random numbers as uninterrupted
    training.

    A resumed run starts its generators from the seed (mmengine reseeds them
    with the checkpoint's seed), not from where the interrupted run was, so
    it draws other random numbers (data augmentation, dropout, drop path,
    ...). This hook stores the states of the python, numpy, torch CPU and
    CUDA generators of every rank in the checkpoint
    (``checkpoint['random_states']``, one entry per rank) and gives every rank
    its own back on resume.

    When the states are taken and given back (mmengine 0.10.7):

    * Taken in ``after_train_iter`` on every rank, gathered with
      ``all_gather_object``. Not in ``before_save_checkpoint``: it runs inside
      ``Runner.save_checkpoint``, which is ``master_only``, so only rank 0
      gets there and a collective would hang. The priority ``LOW`` puts this
      before CheckpointHook (``VERY_LOW``) writes the checkpoint of that
      iteration. ``before_save_checkpoint`` then stores the states of the
      last finished iteration.
    * Read in ``after_load_checkpoint``, which ``Runner.load_checkpoint``
      calls both for ``load_from`` (weights only) and for ``resume``. They
      are not applied there: ``Runner.resume`` goes on to reseed every
      generator (``set_randomness``) and the train loop then positions its
      data. Only ``Runner.resume`` sets ``runner.iter`` to the
      checkpoint's iteration, so the states are applied in
      ``before_train_epoch`` when ``runner.iter`` is that iteration
      (:class:`MultiTaskIterBasedTrainLoop` positions its data before the
      ``before_train`` hooks) and dropped otherwise (``load_from``).
    * Validation during training runs between taking the states and the next
      iteration, but a resumed run does not repeat the validation that
      followed its checkpoint. So ``before_val`` saves this rank's states and
      ``after_val`` restores them: validation leaves the training random
      stream untouched.

    Not covered: the generators of dataloader workers (``num_workers > 0``),
    which mmengine reseeds when they start, and checkpoints resumed with
    another number of ranks, which restore nothing and warn.

    Examples:
        >>> custom_hooks = [dict(type='RandomStateHook')]
    """

    priority = 'LOW'

    def __init__(self) -> None:
        # The states of every rank after the last finished training iteration.
        self._rank_states: Optional[list] = None
        # (states of every rank, iteration) of the checkpoint being loaded.
        self._loaded: Optional[tuple] = None
        # This rank's states when the running validation started.
        self._state_before_val: Optional[dict] = None

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Gather the states of every rank after each iteration."""
        self._rank_states = all_gather_object(_get_random_state())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store every rank's states in the checkpoint (rank 0 only)."""
        if self._rank_states is not None:
            checkpoint['random_states'] = self._rank_states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the checkpoint's states until it is known to be resumed."""
        self._loaded = (checkpoint.get('random_states'),
                        checkpoint.get('meta', {}).get('iter'))

    def before_train_epoch(self, runner) -> None:
        """Give this rank its states back when training was resumed."""
        if self._loaded is None:
            return
        rank_states, ckpt_iter = self._loaded
        self._loaded = None
        if runner.iter == 0 or runner.iter != ckpt_iter:
            return  # `load_from`: training starts afresh
        if rank_states is None:
            print_log(
                'The resumed checkpoint has no `random_states` (it was not '
                'saved with RandomStateHook): the random numbers drawn from '
                'now on differ from those of uninterrupted training.',
                logger='current',
                level=logging.WARNING)
        elif len(rank_states) != runner.world_size:
            print_log(
                f'The resumed checkpoint has the random states of '
                f'{len(rank_states)} ranks but {runner.world_size} are '
                'running: random states are not restored.',
                logger='current',
                level=logging.WARNING)
        else:
            _set_random_state(rank_states[runner.rank])

    def before_val(self, runner) -> None:
        """Save this rank's states before validation draws from them."""
        self._state_before_val = _get_random_state()

    def after_val(self, runner) -> None:
        """Restore the states saved in :meth:`before_val`."""
        _set_random_state(self._state_before_val)
        self._state_before_val = None
