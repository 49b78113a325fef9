"""One-shot magnitude pruning of an Expansion checkpoint (X-Learner_p, paper
Sec. 3.4), without fine-tuning: what ``tools/prune.py`` runs."""
from typing import Optional

from xlearner_mm.apis.runner_setup import load_trained_model
from xlearner_mm.models.pruning import MagnitudePruner, sparsity_report
from xlearner_mm.utils import atomic_torch_save


def prune_checkpoint(config: str,
                     checkpoint: str,
                     out: str,
                     pruner: MagnitudePruner,
                     cfg_options: Optional[dict] = None) -> dict:
    """Prune the weights of ``checkpoint`` with ``pruner`` and write them to
    ``out``.

    The output is an mmengine checkpoint like the input (``meta`` and
    ``state_dict``; the optimizer, scheduler and message-hub states are
    dropped, they belong to the unpruned run) whose weights contain the
    zeros, with ``meta['pruning']`` describing the method and the real
    sparsity. It loads into the config's model as it is, e.g. as
    ``load_from`` of ``configs/xlearner/prune_r50.py`` (whose hook then finds
    the same weights to prune) or into the Squeeze Stage / downstream
    configs.

    Args:
        config (str): The config file whose ``model`` the checkpoint was
            trained as.
        checkpoint (str): The Expansion checkpoint, read safely
            (:func:`read_checkpoint`) and loaded strictly.
        out (str): Where the pruned checkpoint is written (atomically).
        pruner (MagnitudePruner): What to prune, and how much.
        cfg_options (dict, optional): Overrides of the config, as
            ``--cfg-options`` gives them.

    Returns:
        dict: The saved ``meta['pruning']``: the pruner's settings,
        ``source`` (``checkpoint``) and :func:`sparsity_report`'s figures.
    """
    model, ckpt = load_trained_model(config, checkpoint, cfg_options)

    pruner.prune(model)
    report = sparsity_report(model, pruner.patterns)
    pruning = dict(pruner.describe(), source=checkpoint, **report)
    meta = dict(ckpt.get('meta') or {}, pruning=pruning)
    atomic_torch_save(dict(meta=meta, state_dict=model.state_dict()), out)
    return pruning
