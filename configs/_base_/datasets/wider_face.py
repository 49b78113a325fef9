# WIDER FACE (face detection, 1 category), read by mmdet.WIDERFaceDataset,
# which takes PASCAL VOC style XML annotations. Get WIDER_train.zip and
# WIDER_val.zip from http://shuoyang1213.me/WIDERFACE/ and the XML files and
# image lists from
# https://github.com/sovrasov/wider-face-pascal-voc-annotations, then arrange
# them as mmdet's configs/wider_face/README.md says: the event folders of
# WIDER_*/images/ moved up into WIDER_*/, the XML files into
# WIDER_*/Annotations/ (mmdet 3.3 reads <data_prefix img>/Annotations/<id>.xml
# and the image <data_prefix img>/<the XML's folder>/<id>.jpg):
#
#   data/wider_face/
#   ├── train.txt   (image ids, e.g. "0_Parade_marchingband_1_849")
#   ├── val.txt
#   ├── WIDER_train/
#   │   ├── 0--Parade/0_Parade_marchingband_1_849.jpg ...  (<folder>/<id>.jpg)
#   │   └── Annotations/0_Parade_marchingband_1_849.xml ...
#   └── WIDER_val/
#       ├── 0--Parade/*.jpg ...
#       └── Annotations/*.xml
wider_face_train = dict(
    type='mmdet.WIDERFaceDataset',
    data_root='data/wider_face/',
    ann_file='train.txt',
    data_prefix=dict(img='WIDER_train/'),
    filter_cfg=dict(filter_empty_gt=True, bbox_min_size=17, min_size=32))
wider_face_val = dict(
    type='mmdet.WIDERFaceDataset',
    data_root='data/wider_face/',
    ann_file='val.txt',
    data_prefix=dict(img='WIDER_val/'),
    test_mode=True)
wider_face_evaluator = dict(
    type='mmdet.VOCMetric', metric='mAP', eval_mode='11points')
wider_face_num_classes = 1
# Paper Table 1: 13k. The WIDER FACE train split (40% of its 32,203 images).
wider_face_train_size = 12880
