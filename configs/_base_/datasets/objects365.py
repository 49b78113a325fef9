# Objects365 v1 detection (365 categories), the set of paper Table 1 (609k
# train images), read by mmdet.Objects365V1Dataset. Get the v1 images and
# objects365_{train,val}.json (https://www.objects365.org/download.html, or
# OpenDataLab's Objects365_v1) and arrange them as mmdet's
# configs/_base_/datasets/objects365v1_detection.py expects:
#
#   data/Objects365/Obj365_v1/
#   ├── train/*.jpg
#   ├── val/*.jpg
#   └── annotations/objects365_{train,val}.json
objects365_train = dict(
    type='mmdet.Objects365V1Dataset',
    data_root='data/Objects365/Obj365_v1/',
    ann_file='annotations/objects365_train.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32))
objects365_val = dict(
    type='mmdet.Objects365V1Dataset',
    data_root='data/Objects365/Obj365_v1/',
    ann_file='annotations/objects365_val.json',
    data_prefix=dict(img='val/'),
    test_mode=True)
objects365_evaluator = dict(
    type='mmdet.CocoMetric',
    ann_file='data/Objects365/Obj365_v1/annotations/objects365_val.json',
    metric='bbox',
    format_only=False)
objects365_num_classes = 365
# Paper Table 1: 609k. The images of objects365_train.json.
objects365_train_size = 608606

# The alternative: Objects365 v2 (the same 365 categories, 1,742,292 train
# images, almost three times Table 1's set), read by
# mmdet.Objects365V2Dataset, which keeps only 'patch<N>/<name>.jpg' of the
# json's file_name ('images/v1/patch<N>/<name>.jpg'), so the json files are
# used as downloaded (zhiyuan_objv2_{train,val}.json):
#
#   data/Objects365/Obj365_v2/
#   ├── train/patch<N>/*.jpg
#   ├── val/patch<N>/*.jpg
#   └── annotations/zhiyuan_objv2_{train,val}.json
#
# Use it with objects365={{_base_.objects365_v2_train}} in the sources and
# the matching val loader and evaluator.
objects365_v2_train = dict(
    objects365_train,
    type='mmdet.Objects365V2Dataset',
    data_root='data/Objects365/Obj365_v2/',
    ann_file='annotations/zhiyuan_objv2_train.json')
objects365_v2_val = dict(
    objects365_val,
    type='mmdet.Objects365V2Dataset',
    data_root='data/Objects365/Obj365_v2/',
    ann_file='annotations/zhiyuan_objv2_val.json')
objects365_v2_evaluator = dict(
    objects365_evaluator,
    ann_file='data/Objects365/Obj365_v2/annotations/zhiyuan_objv2_val.json')
objects365_v2_train_size = 1742292
