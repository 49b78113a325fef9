# Objects365 v2 detection (365 categories), read by mmdet.Objects365V2Dataset.
# Get the images (patch*.tar.gz) and zhiyuan_objv2_{train,val}.json from
# https://www.objects365.org/download.html and arrange them as
#
#   data/objects365/
#   ├── train/patch<N>/*.jpg
#   ├── val/patch<N>/*.jpg
#   └── annotations/zhiyuan_objv2_{train,val}.json
#
# Objects365V2Dataset keeps only 'patch<N>/<name>.jpg' of the json's
# file_name ('images/v1/patch<N>/<name>.jpg'), so the json files are used as
# downloaded (mmdet's tools/misc/download_dataset.py fetches them).
objects365_train = dict(
    type='mmdet.Objects365V2Dataset',
    data_root='data/objects365/',
    ann_file='annotations/zhiyuan_objv2_train.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32))
objects365_val = dict(
    type='mmdet.Objects365V2Dataset',
    data_root='data/objects365/',
    ann_file='annotations/zhiyuan_objv2_val.json',
    data_prefix=dict(img='val/'),
    test_mode=True)
objects365_evaluator = dict(
    type='mmdet.CocoMetric',
    ann_file='data/objects365/annotations/zhiyuan_objv2_val.json',
    metric='bbox',
    format_only=False)
objects365_num_classes = 365
