# X-Learner_p (Tab. 6): the Expansion Stage, then the pruning and fine-tuning
# from its final checkpoint (docs/recipes.md). Train the whole chain with
#
#   python tools/run_recipe.py configs/xlearner/recipes/xlearner_p_r50.py \
#       --work-dir work_dirs/xlearner_p_r50
#
# or rehearse it on synthetic data first (tools/rehearse.py).
stages = dict(
    expansion=dict(config='configs/xlearner/expansion_r50.py'),
    prune=dict(
        config='configs/xlearner/prune_r50.py',
        inputs={'load_from': 'expansion'}))
export = 'prune'
