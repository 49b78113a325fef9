# The extended settings (configs/xlearner/expansion_r50_cls_det_sources.py)
# at toy size: configs/demo/expansion_demo.py with one more classification
# and one more detection source, each with its own head. The demo has no
# CompCars or WIDER FACE: the new sources are demo sources read again under
# new names, which is what adding a source takes (a source config, a head,
# a source ratio).
#
#   python tools/train.py configs/demo/expansion_extended_demo.py
_base_ = './expansion_demo.py'

model = dict(
    task_models=dict(
        cls=dict(head=dict(heads=dict(extra_cls=dict(
            num_classes={{_base_.demo_num_classes.folder_cls}})))),
        det=dict(roi_head=dict(heads=dict(extra_det=dict(bbox_head=dict(
            num_classes={{_base_.demo_num_classes.coco_a}})))))))
train_dataloader = dict(
    cls=dict(
        sampler=dict(source_ratio=[1, 1, 1]),
        dataset=dict(
            sources=dict(extra_cls={{_base_.demo_folder_cls_train}}))),
    det=dict(
        sampler=dict(source_ratio=[1, 1, 1]),
        dataset=dict(sources=dict(extra_det={{_base_.demo_coco_a_train}}))))
