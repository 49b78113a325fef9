# Copyright (c) OpenMMLab. All rights reserved.
# Adapted from mmdet 3.3's tools/test.py.
import argparse
import os.path as osp

# Imported before anything loads a checkpoint: it allow-lists the classes
# mmengine stores in checkpoints for torch>=2.6's weights_only loading.
import xlearner_mm  # noqa: F401,I001
import torch
from mmengine.evaluator import DumpResults

from xlearner_mm.apis import (build_runner, load_config,
                              parse_runner_args, setup_cpu_distributed)
from xlearner_mm.utils import releasing_process_group


def parse_args():
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) an X-Learner model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to pickle files for offline evaluation: '
        'one per name of `test_dataloader`, e.g. results.pkl gives '
        'results_<name>.pkl')
    return parse_runner_args(parser)


def main():
    args = parse_args()

    cfg = load_config(args.config, args.cfg_options, launcher=args.launcher,
                      work_dir=args.work_dir)

    cfg.load_from = args.checkpoint

    if cfg.launcher != 'none' and not torch.cuda.is_available():
        setup_cpu_distributed(cfg)

    runner = build_runner(cfg)

    # add a `DumpResults` dummy metric to the evaluator of every name
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), \
            'The dump file must be a pkl file.'
        stem, ext = osp.splitext(args.out)
        for name, evaluator in runner.test_loop.evaluators.items():
            evaluator.metrics.append(
                DumpResults(out_file_path=f'{stem}_{name}{ext}'))

    # start testing
    runner.test()


if __name__ == '__main__':
    with releasing_process_group():
        main()
