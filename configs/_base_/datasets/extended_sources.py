# The sources of the paper's extended settings (Sec. 4.1, Tab. 3), as the
# pieces a recipe merges into the base setting's model and data:
#
#   "+ Cls Sources":       CompCars (1,716 car models: its web-nature part,
#                          compcars.py says why) and Tsinghua Dogs (130
#                          breeds) as classification sources
#   "+ Cls & Det Sources": and WIDER FACE (faces) as a detection source
#
# e.g. configs/xlearner/expansion_r50_cls_sources.py:
#   model.task_models.cls.head.heads += extra_cls_heads
#   train_dataloader                 += extra_cls_train
_base_ = ['./compcars.py', './tsinghua_dogs.py', './wider_face.py']

extra_cls_heads = dict(
    compcars=dict(num_classes={{_base_.compcars_num_classes}}),
    tsinghua_dogs=dict(num_classes={{_base_.tsinghua_dogs_num_classes}}))
# The classification sampler's source_ratio='size' takes the new sources in
# by their sizes.
extra_cls_train = dict(
    cls=dict(
        dataset=dict(
            sources=dict(
                compcars={{_base_.compcars_train}},
                tsinghua_dogs={{_base_.tsinghua_dogs_train}}),
            expected_sizes=dict(
                compcars={{_base_.compcars_train_size}},
                tsinghua_dogs={{_base_.tsinghua_dogs_train_size}}))))

extra_det_heads = dict(
    wider_face=dict(
        bbox_head=dict(num_classes={{_base_.wider_face_num_classes}})))
# COCO, Objects365 and WIDER FACE, one third of each detection batch each.
extra_det_train = dict(
    det=dict(
        sampler=dict(source_ratio=[1, 1, 1]),
        dataset=dict(
            sources=dict(wider_face={{_base_.wider_face_train}}),
            expected_sizes=dict(
                wider_face={{_base_.wider_face_train_size}}))))
