"""One-shot magnitude pruning of an Expansion checkpoint (X-Learner_p,
paper Sec. 3.4), without fine-tuning.

    python tools/prune.py configs/xlearner/expansion_r50.py \
        work_dirs/expansion_r50/iter_150000.pth pruned.pth --keep-params one_stream

The output is the checkpoint's ``meta`` and pruned ``state_dict``, with
``meta['pruning']`` describing the method and the real sparsity; it loads
into the config's model as it is. See
:func:`xlearner_mm.apis.prune_checkpoint`.
"""
import argparse
import sys

# Imported before any checkpoint is read: it allow-lists the classes mmengine
# stores in checkpoints for torch>=2.6's weights_only loading.
import xlearner_mm  # noqa: F401,I001
from mmengine.config import DictAction

from xlearner_mm.apis import prune_checkpoint
from xlearner_mm.models.pruning import (DEFAULT_PRUNABLE, MagnitudePruner,
                                        format_report)


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
    pruning = prune_checkpoint(args.config, args.checkpoint, args.out,
                               pruner, args.cfg_options)
    print(format_report(pruning))
    print(f'sparsity of the prunable weights: {pruning["sparsity"]:.4%} '
          f'({pruning["kept"]:,} of {pruning["prunable"]:,} kept); '
          f'saved {args.out}')
    return pruning


if __name__ == '__main__':
    main(sys.argv[1:])
