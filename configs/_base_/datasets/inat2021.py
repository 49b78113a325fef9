# iNaturalist 2021 (fine-grained species classification, 10000 classes), read
# by mmpretrain.CustomDataset from annotation files. Get train.tar.gz,
# val.tar.gz and their json files from
# https://github.com/visipedia/inat_comp/tree/master/2021 and arrange them as
#
#   data/inat2021/
#   ├── train/00000_Animalia_Annelida_..._Lumbricus_terrestris/*.jpg ...
#   ├── val/00000_Animalia_..._Lumbricus_terrestris/*.jpg ...
#   └── meta/
#       ├── train.txt   ("train/00000_Animalia_..._terrestris/<uuid>.jpg 0")
#       └── val.txt     ("val/00000_Animalia_..._terrestris/<uuid>.jpg 0")
#
# The lists come from train.json / val.json (COCO style): one line
# "<images[i].file_name> <category_id of its annotation>" per image; the
# category ids are already 0..9999.
inat2021_train = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/inat2021/',
    ann_file='meta/train.txt')
inat2021_val = dict(
    type='mmpretrain.CustomDataset',
    data_root='data/inat2021/',
    ann_file='meta/val.txt',
    test_mode=True)
inat2021_evaluator = dict(type='mmpretrain.Accuracy', topk=(1, 5))
inat2021_num_classes = 10000
# Paper Table 1: 2.7M. The iNat2021 train set (not train_mini).
inat2021_train_size = 2686843
