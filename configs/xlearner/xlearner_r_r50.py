# X-Learner_r (paper Sec. 3.4, Fig. 3 (c) where it is called X-Learner_s,
# Fig. 4, Tab. 6): Squeeze-Expansion, the reverse order of X-Learner's
# stages. T = 2 task-specific teachers, each trained on its task's sources
# (one-task Expansion runs), are distilled into T HalfResNet-50 students,
# which are then joined by reconciliation layers in an Expansion Stage. The
# final model has about the parameters of one ResNet-50: two 11.80 M
# HalfResNet-50 streams and 2.94 M of reconciliation layers make 26.54 M,
# against 23.51 M (tools/count_params.py prints every stage's figures).
#
# The chain, stage after stage, each stage's final checkpoint handed on to
# the config keys of `inputs` of the stages that read it, then the final model
# exported whole (work_dirs/xlearner_r_r50/export/expanded.pth, for
# PretrainedExpandedBackbone in stock configs):
#
#   python tools/run_recipe.py configs/xlearner/xlearner_r_r50.py \
#       --work-dir work_dirs/xlearner_r_r50
#
# On several GPUs, run the stages one after the other with tools/
# dist_train.sh (each config's header gives its command), or the whole chain
# with `torchrun --nproc_per_node 8 tools/run_recipe.py ... --launcher
# pytorch`. A stage whose work_dir already holds its final checkpoint is not
# run again.

# The stages in the order they run; `config` relative to the working
# directory (the repository root), `inputs` maps config keys to the stage
# whose final checkpoint they take.
stages = dict(
    teacher_cls=dict(config='configs/xlearner/xlearner_r_teacher_cls_r50.py'),
    teacher_det=dict(config='configs/xlearner/xlearner_r_teacher_det_r50.py'),
    squeeze_cls=dict(
        config='configs/xlearner/xlearner_r_squeeze_cls_half_r50.py',
        inputs={'model.teacher_checkpoint': 'teacher_cls'}),
    squeeze_det=dict(
        config='configs/xlearner/xlearner_r_squeeze_det_half_r50.py',
        inputs={'model.teacher_checkpoint': 'teacher_det'}),
    expansion=dict(
        config='configs/xlearner/xlearner_r_expansion_half_r50.py',
        inputs={
            'model.backbone.stream_overrides.cls.init_cfg.checkpoint':
            'squeeze_cls',
            'model.backbone.stream_overrides.det.init_cfg.checkpoint':
            'squeeze_det',
        }))
# The stage whose final checkpoint is exported whole (expanded backbone +
# reconciliation neck) to <work_dir>/export/expanded.pth.
export = 'expansion'
