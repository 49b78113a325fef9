# X-Learner_t (configs/xlearner/expansion_r50_top_down.py) at toy size:
# configs/demo/expansion_demo.py with reconciliation from the other tasks'
# deeper levels into shallower ones. Squeeze it with
# configs/demo/squeeze_top_down_demo.py.
#
#   python tools/train.py configs/demo/expansion_top_down_demo.py \
#       --work-dir work_dirs/demo/expansion_top_down
_base_ = './expansion_demo.py'

model = dict(neck=dict(direction='top_down'))
