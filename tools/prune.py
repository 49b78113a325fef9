"""One-shot magnitude pruning of an Expansion checkpoint (X-Learner_p,
paper Sec. 3.4), without fine-tuning.

    python tools/prune.py configs/xlearner/expansion_r50.py \
        work_dirs/expansion_r50/iter_150000.pth pruned.pth --keep-params one_stream

The output is an mmengine checkpoint like the input (``meta`` and
``state_dict``; the optimizer, scheduler and message-hub states are dropped,
they belong to the unpruned run) whose weights contain the zeros, with
``meta['pruning']`` describing the method and the real sparsity. It loads
into the config's model as it is, e.g. as ``load_from`` of
``configs/xlearner/prune_r50.py`` (whose hook then finds the same weights to
prune) or into the Squeeze Stage / downstream configs.
"""
import argparse
import sys

# Imported before any checkpoint is read: it allow-lists the classes mmengine
# stores in checkpoints for torch>=2.6's weights_only loading.
import xlearner_mm  # noqa: F401,I001
from mmengine.config import Config, DictAction

from xlearner_mm.models.pruning import (DEFAULT_PRUNABLE, MagnitudePruner,
                                        format_report, sparsity_report)
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import atomic_torch_save, register_all_modules
from xlearner_mm.utils.compat import load_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Prune an Expansion checkpoint by weight magnitude')
    parser.add_argument('config', help='config that builds the checkpoint\'s model')
    parser.add_argument('checkpoint', help='Expansion checkpoint to prune')
    parser.add_argument('out', help='where to write the pruned checkpoint')
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        '--sparsity', type=float,
        help='fraction of the prunable weights to zero, in [0, 1)')
    target.add_argument(
        '--keep-params', choices=['one_stream'],
        help='keep as many weights as one sub-backbone has (one ResNet-50)')
    parser.add_argument(
        '--scope', choices=['global', 'layer'], default='global',
        help='one magnitude threshold over all prunable weights (global, '
        'default) or the same sparsity in every layer (layer)')
    parser.add_argument(
        '--patterns', nargs='+', default=list(DEFAULT_PRUNABLE),
        help='fnmatch patterns of the prunable parameter names (only conv '
        'and linear weights among them are pruned)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, xxx=yyy format')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Prune, save, print the sparsity; returns the saved ``meta['pruning']``."""
    args = parse_args(argv)
    pruner = MagnitudePruner(
        sparsity=args.sparsity,
        keep_params=args.keep_params,
        scope=args.scope,
        patterns=args.patterns)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    register_all_modules(init_default_scope=False)
    # No init_weights: every weight comes from the checkpoint (strict load),
    # and pretrained init_cfg entries are not fetched.
    model = MODELS.build(cfg.model)
    checkpoint = load_checkpoint(args.checkpoint)
    if 'state_dict' not in checkpoint:
        raise KeyError(f'{args.checkpoint} has no `state_dict`: not an '
                       'mmengine checkpoint')
    try:
        model.load_state_dict(checkpoint['state_dict'], strict=True)
    except RuntimeError as error:
        raise RuntimeError(f'{args.checkpoint} does not fit the model of '
                           f'{args.config}: {error}') from error

    pruner.prune(model)
    report = sparsity_report(model, pruner.patterns)
    pruning = dict(pruner.describe(), source=args.checkpoint, **report)
    meta = dict(checkpoint.get('meta') or {}, pruning=pruning)
    atomic_torch_save(dict(meta=meta, state_dict=model.state_dict()), args.out)
    print(format_report(report))
    print(f'sparsity of the prunable weights: {report["sparsity"]:.4%} '
          f'({report["kept"]:,} of {report["prunable"]:,} kept); '
          f'saved {args.out}')
    return pruning


if __name__ == '__main__':
    main(sys.argv[1:])
