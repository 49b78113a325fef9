# The "+ Cls & Det Sources" setting (paper Sec. 4.1, Tab. 3): the
# "+ Cls Sources" recipe of configs/xlearner/expansion_r50_cls_sources.py
# with WIDER FACE as a third detection source (its own RoI head). Squeeze it
# with squeeze_r50_cls_det_sources.py; hard_sharing_r50_cls_det_sources.py
# is its Hard-sharing row.
#
#   bash tools/dist_train.sh configs/xlearner/expansion_r50_cls_det_sources.py 8
_base_ = './expansion_r50_cls_sources.py'

model = dict(
    task_models=dict(det=dict(roi_head=dict(heads={{_base_.extra_det_heads}}))))
train_dataloader = {{_base_.extra_det_train}}
val_dataloader = dict(
    wider_face=dict(
        _base_.val_dataloader.coco,
        dataset=dict(
            _base_.val_dataloader.coco.dataset,
            sources=dict(wider_face=_base_.wider_face_val))))
val_evaluator = dict(wider_face={{_base_.wider_face_evaluator}})
test_dataloader = val_dataloader
test_evaluator = val_evaluator
