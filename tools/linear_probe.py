"""Linear-probe evaluation of an exported backbone (paper Sec. 4.2, "AVG Cls").

    python tools/linear_probe.py CONFIG [CHECKPOINT] [--work-dir DIR]
        [--out results.json] [--cfg-options k=v ...]

CONFIG is a linear-probe config (configs/linear_probe/), CHECKPOINT the
backbone's weights: an export of tools/export_backbone.py, or a model-zoo
or training checkpoint in a layout ``ZooPretrained`` reads (without it, the
backbone's random initialisation is probed). Prints a table (dataset, #train, #val, #test, best lambda,
top-1) and the average top-1, and writes the results as JSON
(``--out``, default ``<work_dir>/linear_probe.json``). The protocol is
documented in xlearner_mm/evaluation/linear_probe.py.
"""
import argparse
import os
import os.path as osp
import time

# Imported before anything loads a checkpoint: it allow-lists the classes
# mmengine stores in checkpoints for torch>=2.6's weights_only loading.
import xlearner_mm  # noqa: F401,I001
from mmengine.config import DictAction
from mmengine.logging import MMLogger, print_log

from xlearner_mm.apis import load_config
from xlearner_mm.evaluation import format_probe_table, run_linear_probe
from xlearner_mm.utils import atomic_json_dump, register_all_modules


def parse_args():
    parser = argparse.ArgumentParser(
        description='Linear-probe evaluation of an exported backbone')
    parser.add_argument('config', help='linear-probe config file path')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='the backbone\'s weights (an export, a model-zoo or a training '
        'checkpoint); omitted: probe the random initialisation')
    parser.add_argument(
        '--work-dir', help='the directory of the log and default results')
    parser.add_argument(
        '--out', help='results JSON (default: <work_dir>/linear_probe.json)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'backbone.depth=18 probe.num_lambdas=5')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(
        args.config,
        args.cfg_options,
        work_dir=args.work_dir,
        work_dirs=osp.join('./work_dirs', 'linear_probe'))
    out = args.out or osp.join(cfg.work_dir, 'linear_probe.json')

    timestamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())
    os.makedirs(cfg.work_dir, exist_ok=True)
    log_file = osp.join(cfg.work_dir, f'linear_probe_{timestamp}.log')
    MMLogger.get_instance(
        'xlearner_mm_linear_probe', log_file=log_file, log_level='INFO')
    register_all_modules()

    results = run_linear_probe(cfg, args.checkpoint)
    results.update(
        config=args.config,
        checkpoint=args.checkpoint,
        cfg_options=args.cfg_options,
        probe=dict(cfg.get('probe', {})))
    print_log('\n' + format_probe_table(results), logger='current')
    atomic_json_dump(results, out, indent=2)
    print_log(f'results written to {out}', logger='current')


if __name__ == '__main__':
    main()
