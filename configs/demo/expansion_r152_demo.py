# X-Learner_R152 (configs/xlearner/expansion_r152_seg.py) at toy size:
# configs/demo/expansion_demo.py (cls + det + seg, as "w/ seg") with
# ResNet-152 streams at 1/8 width (levels of 32, 64, 128 and 256 channels).
# Squeeze it with configs/demo/squeeze_r152_demo.py.
#
#   python tools/train.py configs/demo/expansion_r152_demo.py \
#       --work-dir work_dirs/demo/expansion_r152
_base_ = './expansion_demo.py'

stream = dict(depth=152, base_channels=8)
widths = [32, 64, 128, 256]
model = dict(
    backbone=dict(backbone=stream),
    task_models=dict(
        cls=dict(head=dict(shared=dict(in_channels=widths[-1]))),
        det=dict(neck=dict(in_channels=widths)),
        seg=dict(decode_head=dict(shared=dict(in_channels=widths[-1])))))
