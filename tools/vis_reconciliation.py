"""Draw what reconciliation adds in a trained Expansion model, on one image:
each task's feature maps E_i^t and F_i^t, and a heatmap of every
reconciliation link's contribution (paper Eq. 2).

    python tools/vis_reconciliation.py configs/demo/expansion_demo.py \\
        work_dirs/demo/expansion/iter_120.pth --img data/demo/coco_a/val/0000.jpg \\
        --out-dir work_dirs/demo/pictures

Writes to --out-dir:

- ``reconciliation_heatmap.png`` (1200 x 600): one cell per link
  gamma_{j->i}^{k->t}, target (t, i) by row, source (k, j) by column, of
  mean |gamma(E_j^k)| / mean |E_i^t|; levels are 0-based, as
  ``neck.out_levels`` names them;
- ``featmaps_<task>.png`` (D*256 x 512 for D levels): the channel mean of
  E_i^t (top row) and F_i^t (below) over the image (mmengine's
  ``Visualizer.draw_featmap``).

The image is read with mmcv, resized to --size x --size, and goes through
each task's data preprocessor, as in training. See
xlearner_mm/visualization/reconciliation.py.
"""
import argparse
import os
import os.path as osp

import mmcv

from xlearner_mm.apis import load_trained_model
from xlearner_mm.visualization import (draw_feature_maps, image_inputs,
                                       plot_contributions, run_reconciliation)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the Expansion config')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('--img', required=True, help='the image')
    parser.add_argument(
        '--out-dir', default='work_dirs/vis_reconciliation',
        help='where the pictures go')
    parser.add_argument(
        '--task', nargs='+',
        help='the target tasks to draw (default: every task)')
    parser.add_argument(
        '--size', type=int, default=224,
        help='the side the image is resized to; a multiple of 32 keeps the '
        "streams' levels aligned (default: 224)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    model, _ = load_trained_model(args.config, args.checkpoint)
    image = mmcv.imresize(mmcv.imread(args.img), (args.size, args.size))
    tasks = args.task or list(model.tasks)
    found = run_reconciliation(model, image_inputs(model, image, tasks))
    os.makedirs(args.out_dir, exist_ok=True)
    heatmap = osp.join(args.out_dir, 'reconciliation_heatmap.png')
    plot_contributions(found.contributions, heatmap)
    print(f'{len(found.contributions)} links: {heatmap}')
    for task in tasks:
        out = osp.join(args.out_dir, f'featmaps_{task}.png')
        mmcv.imwrite(
            mmcv.rgb2bgr(draw_feature_maps(mmcv.bgr2rgb(image), task,
                                           found.streams[task],
                                           found.fused[task])), out)
        print(f'E and F of {task}: {out}')
    return found.contributions


if __name__ == '__main__':
    main()
