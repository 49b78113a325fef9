# The transfer suite at toy size (python tools/transfer.py configs/transfer/demo.py),
# which `make demo` runs last: the protocol of table2_r50.py (inherited: the
# metrics, the lr ranges, how each backbone kind is loaded) on the demo data,
# with the backbones that make demo trains. Every stage is real (stock
# configs, VOCMetric, IoUMetric, the probe), but the splits hold a few images,
# the fine-tunes train 4 iterations and the grid has 2 points: the table
# shows the workflow, it does not measure accuracy.
#
# - xlearner: the Squeeze student of configs/demo/squeeze_demo.py, exported
#   (a plain ResNet-50);
# - hard_sharing: the checkpoint of configs/demo/hard_sharing_demo.py, whose
#   one shared stream (a ResNet-18 of width 16) is used through
#   PretrainedExpandedBackbone;
# - random_init: the stock configs' ResNet-50 as initialised, the baseline.
_base_ = ['./table2_r50.py']

backbones = dict(
    _delete_=True,
    xlearner=dict(checkpoint='work_dirs/demo/export/xlearner_r50.pth'),
    hard_sharing=dict(checkpoint='work_dirs/demo/hard_sharing/iter_120.pth'),
    random_init=dict(checkpoint=None))
baseline = 'random_init'
reference = None

probe = dict(
    config='configs/linear_probe/demo.py',
    cfg_options=dict(probe=dict(num_lambdas=3)))
# 14 of the 32 training images of coco_a, and of the ADE-style source (the
# same file names), are held out: a hash split is exact only on average.
finetunes = dict(
    det=dict(
        config='configs/demo/faster-rcnn_r50_fpn_transfer_demo.py',
        lrs=(0.005, 0.02),
        holdout=0.25,
        gpus=1),
    seg=dict(
        config='configs/demo/deeplabv3_r50b_transfer_demo.py',
        lrs=(0.005, 0.02),
        holdout=0.25,
        gpus=1,
        # the demo trains a segmentation task
        expanded=dict(task='seg')))
