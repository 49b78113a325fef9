# Every recipe of the paper's Tables 2, 3, 5 and 6 (docs/recipes.md) by the
# protocol of table2_r50.py, in one table. Each entry is the recipe's
# evaluated model, exported as the README's "Using the pre-trained backbone"
# shows, under work_dirs/export/:
#
#   python tools/export_backbone.py work_dirs/squeeze_r50/iter_150000.pth \
#       work_dirs/export/xlearner_r50.pth
#   python tools/transfer.py configs/transfer/recipes_r50.py --launcher slurm \
#       --partition PARTITION
#
# X-Learner_p and X-Learner_r end with an expanded model: their checkpoint is
# used whole (PretrainedExpandedBackbone). A missing file fails before any
# job starts, naming its `backbones.<name>.checkpoint`; comment out what you
# did not train.
_base_ = ['./table2_r50.py']

backbones = dict(
    hard_sharing=dict(checkpoint='work_dirs/export/hard_sharing_r50.pth'),
    xlearner=dict(checkpoint='work_dirs/export/xlearner_r50.pth'),
    xlearner_plusplus=dict(
        checkpoint='work_dirs/export/xlearner_plusplus_r50.pth'),
    xlearner_w_seg=dict(checkpoint='work_dirs/export/xlearner_seg_r50.pth'),
    xlearner_wo_rec=dict(checkpoint='work_dirs/export/xlearner_wo_rec_r50.pth'),
    xlearner_t=dict(checkpoint='work_dirs/export/xlearner_top_down_r50.pth'),
    xlearner_p=dict(checkpoint='work_dirs/prune_r50/iter_15000.pth',
                    kind='expanded'),
    xlearner_r=dict(checkpoint='work_dirs/xlearner_r_r50/export/expanded.pth',
                    kind='expanded'),
    hard_sharing_cls_sources=dict(
        checkpoint='work_dirs/export/hard_sharing_cls_sources_r50.pth'),
    xlearner_cls_sources=dict(
        checkpoint='work_dirs/export/xlearner_cls_sources_r50.pth'),
    hard_sharing_cls_det_sources=dict(
        checkpoint='work_dirs/export/hard_sharing_cls_det_sources_r50.pth'),
    xlearner_cls_det_sources=dict(
        checkpoint='work_dirs/export/xlearner_cls_det_sources_r50.pth'))
