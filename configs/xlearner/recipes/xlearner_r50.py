# X-Learner (Tab. 2, 5, 6): the Expansion Stage, then the Squeeze Stage
# from its final checkpoint (docs/recipes.md). Train the whole chain with
#
#   python tools/run_recipe.py configs/xlearner/recipes/xlearner_r50.py \
#       --work-dir work_dirs/xlearner_r50
#
# or rehearse it on synthetic data first (tools/rehearse.py).
stages = dict(
    expansion=dict(config='configs/xlearner/expansion_r50.py'),
    squeeze=dict(
        config='configs/xlearner/squeeze_r50.py',
        inputs={'model.teacher_checkpoint': 'expansion'}))
export = 'squeeze'
