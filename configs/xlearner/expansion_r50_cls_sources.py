# The "+ Cls Sources" setting (paper Sec. 4.1, Tab. 3): the base setting of
# configs/xlearner/expansion_r50.py with CompCars and Tsinghua Dogs as two
# more classification sources, each with its own head
# (configs/_base_/datasets/extended_sources.py). Squeeze it with
# squeeze_r50_cls_sources.py; hard_sharing_r50_cls_sources.py is its
# Hard-sharing row.
#
#   bash tools/dist_train.sh configs/xlearner/expansion_r50_cls_sources.py 8
_base_ = [
    './expansion_r50.py',
    '../_base_/datasets/extended_sources.py',
]

model = dict(
    task_models=dict(cls=dict(head=dict(heads={{_base_.extra_cls_heads}}))))
train_dataloader = {{_base_.extra_cls_train}}


def _like(loader, name, source):
    """A validation loader of the base setting, for another source."""
    return dict(loader, dataset=dict(loader.dataset, sources={name: source}))


val_dataloader = dict(
    compcars=_like(_base_.val_dataloader.imagenet, 'compcars',
                   _base_.compcars_val),
    tsinghua_dogs=_like(_base_.val_dataloader.imagenet, 'tsinghua_dogs',
                        _base_.tsinghua_dogs_val))
val_evaluator = dict(
    compcars={{_base_.compcars_evaluator}},
    tsinghua_dogs={{_base_.tsinghua_dogs_evaluator}})
test_dataloader = val_dataloader
test_evaluator = val_evaluator
