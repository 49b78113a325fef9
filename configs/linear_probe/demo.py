# Linear probe on the demo classification sources (python
# tools/make_demo_data.py writes them): folder_cls (4 classes, class folders)
# and annfile_cls (3 classes, annotation files), each with a train and a val
# split but no test split, so val serves as the test split and lambda is
# chosen on a held-out 20% of train (probe.val_fraction).
#
#   python tools/linear_probe.py configs/linear_probe/demo.py BACKBONE.pth
#
# The protocol is the paper's except the image size: the demo images are
# 64x64 and probed as they are (224 would only upsample them, and ResNet-50
# at 224 is slow on a CPU). The backbone is ResNet-50; for a backbone of the
# demo models' size add
#   --cfg-options backbone.depth=18 backbone.base_channels=16
_base_ = ['./_base_/default.py', '../_base_/datasets/demo.py']

pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    dict(type='mmpretrain.PackInputs'),
]
dataloader = dict(batch_size=16, num_workers=0)
datasets = dict(
    folder_cls=dict(
        train=dict(dataset={{_base_.demo_folder_cls_train}}),
        test=dict(dataset={{_base_.demo_folder_cls_val}})),
    annfile_cls=dict(
        train=dict(dataset={{_base_.demo_annfile_cls_train}}),
        test=dict(dataset={{_base_.demo_annfile_cls_val}})))
