# The paper's downstream protocol (Sec. 4.2; Tables 2, 3, 5 and 6) as a
# transfer suite: every backbone is linear-probed on 10 datasets (AVG Cls)
# and fine-tuned as Faster R-CNN R50-FPN on VOC07+12 (PASCAL Det, mAP on
# VOC07 test) and DeepLabV3 R50b at output stride 16 on VOC12 aug (PASCAL
# Seg, mIoU on VOC12 val; the paper sets output stride 8 for Table 4 only),
# each fine-tune over a learning-rate grid inside the paper's range.
#
#   python tools/transfer.py configs/transfer/table2_r50.py \
#       --backbone xlearner=work_dirs/export/xlearner_r50.pth \
#       --backbone hard_sharing=work_dirs/export/hard_sharing_r50.pth \
#       --launcher slurm --partition PARTITION
#
# The learning rate is chosen on a held-out 10% of each training set (by
# file name, xlearner_mm.HoldoutSplit): one search job per rate trains on the
# other 90% and is scored on that 10%; the best rate is then trained once
# more on the whole training set and scored on the test set, which chooses
# nothing. Per backbone: 1 probe, 4 + 1 detection jobs (24k iterations,
# 8 GPUs each) and 5 + 1 segmentation jobs (33k iterations, 4 GPUs each).
# configs/transfer/recipes_r50.py adds the exports of every recipe of the
# paper's tables (docs/recipes.md).

# The supervised baseline of Table 2: mmpretrain's ImageNet ResNet-50
# (76.55 top-1), a model-zoo checkpoint ZooPretrained reads.
backbones = dict(
    imagenet_supervised=dict(
        checkpoint='https://download.openmmlab.com/mmclassification/v0/'
        'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth',
        kind='resnet'))  # known: no download to find it out
baseline = 'imagenet_supervised'
# The paper's own Table 2, as reference rows (gains over its own ImageNet
# row).
reference = 'configs/transfer/paper_table2.csv'
seed = 0

probe = dict(
    config='configs/linear_probe/avg_cls_10datasets.py',
    # an expanded backbone is probed on F^cls
    expanded=dict(task='cls', out_indices=(3, )))
finetunes = dict(
    det=dict(
        config='configs/downstream/faster-rcnn_r50_fpn_xlearner_24k_voc0712.py',
        column='PASCAL Det',
        metric='pascal_voc/mAP',
        scale=100,  # VOCMetric's mAP is a fraction
        lrs=(0.005, 0.01, 0.02, 0.04),
        lr_range=(0.001, 0.05),  # the paper's
        holdout=0.1,
        gpus=8,
        # an expanded backbone gives F^det, frozen and normalised as the
        # stock ResNet-50 is; the FPN reads its widths
        expanded=dict(task='det', stream_cfg=dict(frozen_stages=1),
                      norm_eval=True),
        widths={'model.neck.in_channels': (0, 1, 2, 3)}),
    seg=dict(
        config='configs/downstream/'
        'deeplabv3_r50b-d16_xlearner_33k_voc12aug-513x513.py',
        column='PASCAL Seg',
        metric='mIoU',
        lrs=(0.0025, 0.005, 0.01, 0.02, 0.04),
        lr_range=(0.001, 0.07),  # the paper's
        holdout=0.1,
        gpus=4,
        # F^det (the dense-prediction stream) of an expanded backbone without
        # a seg task, dilated to output stride 16 as the config's backbone
        expanded=dict(task='det', stream_cfg=dict(strides=(1, 2, 2, 1),
                                                  dilations=(1, 1, 1, 2))),
        widths={
            'model.decode_head.in_channels': 3,
            'model.auxiliary_head.in_channels': 2
        }))
