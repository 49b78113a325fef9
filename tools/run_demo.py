"""The demo behind ``make demo``: the Expansion Stage on the generated demo
data (classification, detection and segmentation, tau switch included), then
a summary of how each task's loss moved and where the checkpoint is.

    python tools/make_demo_data.py --out data/demo
    python tools/run_demo.py --work-dir work_dirs/demo
"""
import argparse
import glob
import json
import os
import os.path as osp
import time

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import xlearner_mm  # noqa: F401  (allow-lists checkpoint classes)

DEFAULT_CONFIG = osp.join(
    osp.dirname(__file__), '..', 'configs', 'demo', 'expansion_demo.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, xxx=yyy format')
    return parser.parse_args()


def read_scalars(work_dir: str) -> list:
    """The training records mmengine's LocalVisBackend wrote in its newest
    run folder."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')),
                   key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f'no scalars.json under {work_dir}')
    with open(paths[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def loss_table(records: list, tasks) -> str:
    train = [r for r in records if 'loss' in r and 'iter' in r]
    first, last = train[0], train[-1]
    lines = [f'{"task":<6} {"loss @ iter " + str(first["iter"]):>16} '
             f'{"loss @ iter " + str(last["iter"]):>16} {"change":>8}']
    for task in tasks:
        key = f'{task}.task_loss'
        a, b = first[key], last[key]
        lines.append(f'{task:<6} {a:>16.4f} {b:>16.4f} {(b - a) / a:>+8.1%}')
    return '\n'.join(lines)


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir
    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    elapsed = time.time() - start
    records = read_scalars(args.work_dir)
    print('\n=== X-Learner demo: Expansion Stage ===')
    print(f'tasks: {", ".join(cfg.model.task_models)}; iterations: '
          f'{runner.iter}; wall time: {elapsed:.0f} s')
    print(loss_table(records, list(cfg.model.task_models)))
    val = [r for r in records if not ('loss' in r and 'iter' in r)]
    if val:
        print('validation: ' + ', '.join(
            f'{k}={v:.3f}' for k, v in val[-1].items()
            if isinstance(v, float) and k not in ('step', 'time', 'data_time')))
    print(f'checkpoint: {osp.join(args.work_dir, "iter_%d.pth" % runner.iter)}')


if __name__ == '__main__':
    main()
