"""Export X-Learner's pre-trained backbone for stock mmdet/mmseg/mmpretrain
configs.

    # Squeeze Stage checkpoint -> the student ResNet with plain keys
    python tools/export_backbone.py work_dirs/squeeze/iter_N.pth xlearner_r50.pth
    # Expansion Stage checkpoint (pruned or not) -> one task's sub-backbone
    python tools/export_backbone.py work_dirs/expansion/iter_N.pth det_r50.pth --task det
    # Hard-sharing checkpoint -> its one shared backbone (--task not needed)
    python tools/export_backbone.py work_dirs/hard_sharing/iter_N.pth hs_r50.pth
    # Expansion Stage checkpoint -> expanded backbone + reconciliation neck
    python tools/export_backbone.py work_dirs/expansion/iter_N.pth expanded.pth

A plain-key export loads into a stock config through
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)``
(mmseg configs: also ``model.pretrained=None``). See ``xlearner_mm/apis/export.py``.
"""
import argparse

from xlearner_mm.apis import export_backbone, stock_configs_fitted


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help='Squeeze or Expansion checkpoint')
    parser.add_argument('out', help='where to write the export (.pth)')
    parser.add_argument(
        '--task',
        help='Expansion checkpoints only: export this task\'s sub-backbone '
        'with plain keys (default: the whole expanded backbone and neck)')
    parser.add_argument(
        '--config',
        help='the training config of a checkpoint written before task '
        'layouts were saved in checkpoints (it gives the tasks\' sources and '
        'the stream configs)')
    return parser.parse_args(argv)


def _what(meta: dict) -> str:
    """What an export holds, in words."""
    if meta['stage'] == 'squeeze':
        return 'student backbone'
    if 'resnet' not in meta:
        return 'expanded backbone + reconciliation neck'
    if len(meta['tasks']) > 1:  # Hard-sharing
        return f'backbone shared by the tasks {meta["tasks"]}'
    return f'task "{meta["tasks"][0]}" sub-backbone'


def main(argv=None):
    args = parse_args(argv)
    exported = export_backbone(
        args.checkpoint, args.out, task=args.task, config=args.config)
    meta = exported['meta']
    numel = sum(v.numel() for v in exported['state_dict'].values())
    what = _what(meta)
    print(f'{meta["stage"]} checkpoint {args.checkpoint}: wrote the {what} '
          f'({len(exported["state_dict"])} tensors, {numel / 1e6:.2f}M '
          f'values) to {args.out}')
    print(f'tasks: {meta["tasks"]}; sources: {meta["sources"]}')
    if 'deep_stem' in meta:
        print(f'fits: {stock_configs_fitted(meta)}')
    else:
        print('load it with xlearner_mm.apis.load_expanded_export, or with '
              'Pretrained init_cfgs of prefix "backbone." and "neck." in an '
              'XLearner config')


if __name__ == '__main__':
    main()
