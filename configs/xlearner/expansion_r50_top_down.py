# X-Learner_t (paper Sec. 3.4, Fig. 3 e, Tab. 6): the Expansion Stage of
# configs/xlearner/expansion_r50.py with reconciliation layers that take the
# other task's *deeper* levels into shallower ones (j >= i), stepping down a
# level with gamma_c (up-sampling + conv) instead of gamma_a. With the
# classifier reading only its last level, 11 layers instead of 14: 1 into
# cls level 4, 10 into det. Squeeze it with squeeze_r50_top_down.py.
#
#   bash tools/dist_train.sh configs/xlearner/expansion_r50_top_down.py 8
_base_ = './expansion_r50.py'

model = dict(neck=dict(direction='top_down'))
