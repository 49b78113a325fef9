# X-Learner_r (Squeeze-Expansion) on the demo data: the chain of
# configs/xlearner/xlearner_r_r50.py with the demo twin of each stage (demo
# teachers of 4 iterations, HalfResNet-18 students of 3, a final Expansion
# of 4), in about a minute on 2 CPU cores:
#
#   python tools/run_recipe.py configs/demo/xlearner_r_demo.py \
#       --work-dir work_dirs/demo/xlearner_r
_base_ = '../xlearner/xlearner_r_r50.py'

stages = dict(
    teacher_cls=dict(config='configs/demo/xlearner_r_teacher_cls_demo.py'),
    teacher_det=dict(config='configs/demo/xlearner_r_teacher_det_demo.py'),
    squeeze_cls=dict(config='configs/demo/xlearner_r_squeeze_cls_demo.py'),
    squeeze_det=dict(config='configs/demo/xlearner_r_squeeze_det_demo.py'),
    expansion=dict(config='configs/demo/xlearner_r_expansion_demo.py'))
