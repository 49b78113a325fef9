"""The transfer suite: pre-trained backbones compared by the paper's
downstream protocol (Sec. 4.2), from checkpoints to one results table.

    python tools/transfer.py SUITE_CONFIG [--work-dir DIR]
        [--backbone NAME=CHECKPOINT ...] [--baseline NAME]
        [--launcher {none,pytorch,slurm}] [--gpus N] [--partition P]
        [--cfg-options k=v ...]

For every backbone: the linear probe (AVG Cls and each dataset), and each
fine-tune (Faster R-CNN VOC07+12, DeepLabV3 VOC12 aug) over its learning-rate
grid, chosen on a held-out part of the training set, then trained once more
at that rate on the whole training set and scored on the test set. Every job
has its own work dir; run the same command again to skip finished jobs and
resume interrupted ones. The table goes to
``<work_dir>/transfer_results.{md,csv,json}``. The protocol is documented in
xlearner_mm/apis/transfer.py; configs/transfer/table2_r50.py is the paper's.
"""
import argparse
import os.path as osp

# Imported before anything loads a checkpoint: it allow-lists the classes
# mmengine stores in checkpoints for torch>=2.6's weights_only loading.
import xlearner_mm  # noqa: F401,I001
from mmengine.config import DictAction

from xlearner_mm.apis import TransferSuite, load_config, parse_backbone_arg
from xlearner_mm.apis.transfer import LAUNCHERS
from xlearner_mm.utils import register_all_modules


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Compare pre-trained backbones by the paper\'s '
        'downstream protocol')
    parser.add_argument('config', help='transfer suite config')
    parser.add_argument(
        '--work-dir',
        help='where the jobs and the table go (default: '
        'work_dirs/transfer/<config name>)')
    parser.add_argument(
        '--backbone',
        action='append',
        default=[],
        metavar='NAME=CHECKPOINT',
        help='add (or replace) a backbone of the suite: an export, a '
        'model-zoo checkpoint, an Expansion / pruned / Hard-sharing '
        'checkpoint, or "random" for the random initialisation; repeatable')
    parser.add_argument('--baseline', help='the row the gains are over')
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='how fine-tune jobs run: in this process (none), '
        'tools/dist_train.sh (pytorch) or tools/slurm_train.sh (slurm)')
    parser.add_argument(
        '--gpus', type=int, help='processes per fine-tune job (default: '
        'the suite config\'s finetunes.<name>.gpus)')
    parser.add_argument('--partition', help='the Slurm partition')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the suite config, e.g. '
        'finetunes.det.lrs="(0.01,0.02)"')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(
        args.config,
        args.cfg_options,
        work_dir=args.work_dir,
        work_dirs=osp.join('work_dirs', 'transfer'))
    backbones = dict(cfg.get('backbones') or {})
    for spec in args.backbone:
        backbones.update(parse_backbone_arg(spec))
    cfg.backbones = backbones
    if args.baseline:
        cfg.baseline = args.baseline
    register_all_modules()
    return TransferSuite(cfg, cfg.work_dir, args.launcher, args.gpus,
                         args.partition).run()


if __name__ == '__main__':
    main()
