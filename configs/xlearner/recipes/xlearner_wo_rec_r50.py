# X-Learner w/o Rec. (Tab. 5): the Expansion Stage, then the Squeeze Stage
# from its final checkpoint (docs/recipes.md). Train the whole chain with
#
#   python tools/run_recipe.py configs/xlearner/recipes/xlearner_wo_rec_r50.py \
#       --work-dir work_dirs/xlearner_wo_rec_r50
#
# or rehearse it on synthetic data first (tools/rehearse.py).
stages = dict(
    expansion=dict(config='configs/xlearner/expansion_r50_wo_rec.py'),
    squeeze=dict(
        config='configs/xlearner/squeeze_r50_wo_rec.py',
        inputs={'model.teacher_checkpoint': 'expansion'}))
export = 'squeeze'
