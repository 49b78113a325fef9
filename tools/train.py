# Copyright (c) OpenMMLab. All rights reserved.
# Adapted from mmdet 3.3's tools/train.py.
import argparse

# Imported before anything loads a checkpoint: it allow-lists the classes
# mmengine stores in checkpoints for torch>=2.6's weights_only loading.
import xlearner_mm  # noqa: F401,I001
import torch

from xlearner_mm.apis import (build_runner, load_config, parse_runner_args,
                              setup_amp, setup_cpu_distributed)
from xlearner_mm.utils import releasing_process_group


def parse_args():
    parser = argparse.ArgumentParser(description='Train an X-Learner model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training: float16 with '
        'dynamic loss scaling (mmengine\'s AmpOptimWrapper) on a GPU, '
        'bfloat16 (CPUAmpOptimWrapper) on CPU')
    # No --auto-scale-lr: mmengine 0.10.7's Runner.scale_lr reads
    # `train_dataloader['batch_size']`, which a dict of task dataloaders lacks.
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    return parse_runner_args(parser)


def main():
    args = parse_args()

    cfg = load_config(args.config, args.cfg_options, launcher=args.launcher,
                      work_dir=args.work_dir)

    # enable automatic-mixed-precision training
    if args.amp is True:
        setup_amp(cfg)

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if cfg.launcher != 'none' and not torch.cuda.is_available():
        setup_cpu_distributed(cfg)

    runner = build_runner(cfg)

    # start training
    runner.train()


if __name__ == '__main__':
    with releasing_process_group():
        main()
