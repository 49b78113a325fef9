# X-Learner_R152 (paper Tab. 4: "ResNet-152, ImageNet + DET. + SEG."): the
# "w/ seg" recipe of configs/xlearner/expansion_r50_seg.py with ResNet-152
# sub-backbones (the same level widths as ResNet-50, so heads and
# reconciliation layers are unchanged). Squeeze it with squeeze_r152_seg.py.
#
#   bash tools/dist_train.sh configs/xlearner/expansion_r152_seg.py 8
_base_ = './expansion_r50_seg.py'

model = dict(backbone=dict(backbone=dict(depth=152)))
