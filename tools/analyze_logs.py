# Copyright (c) OpenMMLab. All rights reserved.
# Adapted from mmdet 3.3's tools/analysis_tools/analyze_logs.py.
"""Plot the loss and learning-rate curves of training runs, per task and
source, or print their iteration times.

    python tools/analyze_logs.py plot_curve work_dirs/demo/expansion --out loss_curves.png
    python tools/analyze_logs.py plot_curve RUN_A/vis_data/scalars.json RUN_B --keys det.task_loss lr --out det.png
    python tools/analyze_logs.py cal_train_time work_dirs/demo/expansion

Each run is a ``scalars.json`` (mmengine's LocalVisBackend) or a work dir
(its newest run's). By default ``plot_curve`` draws a subplot per task, with
a line per source loss, per shared loss and the task loss, and one of the
learning rate, on a 1200 x 800 PNG. See xlearner_mm/visualization/
log_analysis.py.
"""
import argparse
import os
import os.path as osp
from collections import OrderedDict

from xlearner_mm.visualization import (default_curve_keys, find_scalars,
                                       format_train_time, load_scalars,
                                       loss_groups, plot_curves,
                                       train_time_stats)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    plot = commands.add_parser('plot_curve', help='plot loss and lr curves')
    plot.add_argument('runs', nargs='+', help='scalars.json files or work dirs')
    plot.add_argument(
        '--keys', nargs='+',
        help='the logged values to plot, grouped per task (default: every '
        'loss of every task, and lr)')
    plot.add_argument('--title', help='title of the figure')
    plot.add_argument('--out', required=True, help='the PNG to write')
    timing = commands.add_parser(
        'cal_train_time', help='print the time per training iteration')
    timing.add_argument('runs', nargs='+', help='scalars.json files or work dirs')
    timing.add_argument(
        '--include-outliers', action='store_true',
        help='include the first logged time (the warm-up)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runs = OrderedDict((run, load_scalars(run)) for run in args.runs)
    if args.command == 'cal_train_time':
        for run, scalars in runs.items():
            print(format_train_time(
                find_scalars(run),
                train_time_stats(scalars, args.include_outliers)))
        return
    keys = args.keys or default_curve_keys(next(iter(runs.values())))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    plot_curves(runs, loss_groups(keys), args.out, args.title)
    print(f'save curve to: {args.out}')


if __name__ == '__main__':
    main()
