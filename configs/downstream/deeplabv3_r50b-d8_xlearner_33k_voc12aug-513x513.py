# Segmentation transfer of paper Sec. 4.2 from the same single export as the
# detection transfer: the paper evaluates "a single X-Learner model" on every
# downstream task, and its Squeeze student is a V1b ResNet-50 (conv1/bn1
# stem, mmdet.ResNet), which faster-rcnn_r50_fpn_xlearner_24k_voc0712.py
# loads too. The schedule, data and crops are those of
# deeplabv3_r50-d8_xlearner_33k_voc12aug-513x513.py; the backbone is mmseg's
# V1b ResNet-50 (type ResNet, as mmseg's r50b configs have it), dilated as
# DeepLabV3-D8 is: strides (1, 2, 1, 1) and dilations (1, 1, 2, 4), so the
# decode head reads features at output stride 8 (65x65 for a 513x513 crop),
# the setting of the paper's Table 4; the Table 2 protocol is at output
# stride 16,
# deeplabv3_r50b-d16_xlearner_33k_voc12aug-513x513.py.
#
#   python tools/export_backbone.py work_dirs/squeeze_r50/iter_150000.pth \
#       work_dirs/export/xlearner_r50.pth
#   bash tools/dist_train.sh configs/downstream/deeplabv3_r50b-d8_xlearner_33k_voc12aug-513x513.py 4
_base_ = './deeplabv3_r50-d8_xlearner_33k_voc12aug-513x513.py'

model = dict(
    backbone=dict(
        type='ResNet',
        init_cfg=dict(checkpoint='work_dirs/export/xlearner_r50.pth')))
