# Copyright (c) OpenMMLab. All rights reserved.
# Adapted from mmdet 3.3's tools/analysis_tools/browse_dataset.py.
"""Draw the training samples of one source of a task, after the task's
pipeline, with their labels.

    python tools/browse_dataset.py configs/demo/expansion_demo.py --task det \\
        --source coco_a --output-dir work_dirs/browse/coco_a --not-show

Each sample is drawn by its codebase's visualizer (mmdet's
DetLocalVisualizer, mmseg's SegLocalVisualizer, mmpretrain's
UniversalVisualizer) with the source's classes, and written as
``<index>_<image name>.png`` at the size the pipeline gives it. See
xlearner_mm/visualization/dataset_browser.py.
"""
import argparse

from xlearner_mm.visualization import browse_source


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='an Expansion config')
    parser.add_argument('--task', required=True,
                        help='a task of train_dataloader')
    parser.add_argument('--source', required=True,
                        help="one of the task's sources")
    parser.add_argument(
        '--output-dir', help='where the pictures go (none: only shown)')
    parser.add_argument(
        '--show-number', '-n', type=int, default=10,
        help='how many samples, from the first (default: 10)')
    parser.add_argument('--not-show', action='store_true',
                        help='do not show the samples in a window')
    return parser.parse_args(argv)


def main(argv=None) -> list:
    args = parse_args(argv)
    return browse_source(
        args.config,
        args.task,
        args.source,
        output_dir=args.output_dir,
        show_number=args.show_number,
        show=not args.not_show)


if __name__ == '__main__':
    main()
