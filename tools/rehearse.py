"""Rehearse a recipe on synthetic data before booking GPUs for it: every
training stage at its real batch sizes, source sizes and class counts for a
few iterations (stopped halfway and resumed), the export, one iteration of
each fine-tune of the transfer suite, and what the whole recipe will cost.

    python tools/rehearse.py configs/xlearner/expansion_r50.py
    python tools/rehearse.py configs/xlearner/recipes/xlearner_r50.py \
        --iters 4 --img-scale 0.25 --world-size 2 --tflops 150

Prints `name: value` lines and Markdown tables, and writes
<work-dir>/rehearsal.json. `--collect DIR [DIR ...]` prints one cost table
of earlier rehearsals (docs/recipes.md). See xlearner_mm/apis/rehearsal.py.
"""
import argparse
import json
import os
import socket
import subprocess
import sys

# Imported before any checkpoint is read: it allow-lists the classes
# mmengine stores in checkpoints for torch>=2.6's weights_only loading.
import xlearner_mm  # noqa: F401,I001

from xlearner_mm.apis import Rehearsal
from xlearner_mm.apis.rehearsal_report import format_cost_table
from xlearner_mm.utils import releasing_process_group


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', nargs='?', help='a recipe config (with '
                        '`stages`) or a training config')
    parser.add_argument('--collect', nargs='+', metavar='WORK_DIR',
                        help='print one cost table of the rehearsals in '
                        'these work dirs (their rehearsal.json) instead')
    parser.add_argument('--work-dir', help='defaults to '
                        'work_dirs/rehearsal/<config name>')
    parser.add_argument('--iters', type=int, default=4,
                        help='training iterations of each stage')
    parser.add_argument('--img-scale', type=float, default=1.0,
                        help='multiplies the configs\' image sizes')
    parser.add_argument('--world-size', type=int, default=1,
                        help='processes (gloo on CPU), started with torchrun')
    parser.add_argument('--no-resume', action='store_true',
                        help='train each stage in one run')
    parser.add_argument('--no-downstream', action='store_true',
                        help='skip the fine-tunes of the transfer suite')
    parser.add_argument('--suite', default='configs/transfer/table2_r50.py',
                        help='the transfer suite whose fine-tunes run')
    parser.add_argument('--workers', type=int, default=None,
                        help='dataloader workers of every training loader '
                        '(default: the configs\' own)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision, as tools/train.py --amp')
    parser.add_argument('--tflops', type=float, default=50.0,
                        help='TFLOP/s achieved per GPU that the projection '
                        'assumes')
    parser.add_argument('--launcher', choices=['none', 'pytorch'],
                        default='none', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.collect:
        reports = []
        for work_dir in args.collect:
            with open(os.path.join(work_dir, 'rehearsal.json')) as f:
                # projected at this run's --tflops
                reports.append(dict(json.load(f), tflops=args.tflops))
        print(format_cost_table(reports))
        return dict(reports=reports)
    if not args.config:
        sys.exit('rehearse.py: give a config (or --collect WORK_DIR ...)')
    if args.world_size > 1 and args.launcher == 'none':
        # one process per rank; each runs this tool with --launcher pytorch
        argv = sys.argv[1:] if argv is None else list(argv)
        command = [
            sys.executable, '-m', 'torch.distributed.run',
            f'--nproc_per_node={args.world_size}',
            f'--master_port={_free_port()}', __file__, *argv,
            '--launcher', 'pytorch'
        ]
        sys.exit(subprocess.call(command))
    work_dir = args.work_dir or os.path.join(
        'work_dirs', 'rehearsal',
        os.path.splitext(os.path.basename(args.config))[0])
    return Rehearsal(
        args.config, work_dir, iters=args.iters, img_scale=args.img_scale,
        resume=not args.no_resume, amp=args.amp, launcher=args.launcher,
        suite=None if args.no_downstream else args.suite,
        tflops=args.tflops, num_workers=args.workers).run()


if __name__ == '__main__':
    with releasing_process_group():
        main()
