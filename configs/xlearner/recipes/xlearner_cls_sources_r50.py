# X-Learner, + Cls Sources (Tab. 3): the Expansion Stage, then the Squeeze Stage
# from its final checkpoint (docs/recipes.md). Train the whole chain with
#
#   python tools/run_recipe.py configs/xlearner/recipes/xlearner_cls_sources_r50.py \
#       --work-dir work_dirs/xlearner_cls_sources_r50
#
# or rehearse it on synthetic data first (tools/rehearse.py).
stages = dict(
    expansion=dict(config='configs/xlearner/expansion_r50_cls_sources.py'),
    squeeze=dict(
        config='configs/xlearner/squeeze_r50_cls_sources.py',
        inputs={'model.teacher_checkpoint': 'expansion'}))
export = 'squeeze'
