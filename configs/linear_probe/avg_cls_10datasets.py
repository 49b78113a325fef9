# "AVG Cls" of the paper (Sec. 4.2): linear-probe top-1 averaged over 10
# classification datasets (general objects, fine-grained objects, scenes,
# textures), 224x224 images, CLIP's protocol (_base_/default.py).
#
#   python tools/linear_probe.py configs/linear_probe/avg_cls_10datasets.py \
#       work_dirs/export/backbone.pth --out work_dirs/linear_probe/results.json
#
# Data layouts and split sizes: _base_/<dataset>.py. For a subset, a config
# with `_base_ = ['./avg_cls_10datasets.py']` and
# `datasets = dict(_delete_=True, dtd={{_base_.dtd}}, ...)`.
_base_ = [
    './_base_/default.py',
    './_base_/cifar.py',
    './_base_/food101.py',
    './_base_/stanford_cars.py',
    './_base_/fgvc_aircraft.py',
    './_base_/oxford_pets.py',
    './_base_/flowers102.py',
    './_base_/caltech101.py',
    './_base_/sun397.py',
    './_base_/dtd.py',
]
datasets = dict(
    cifar10={{_base_.cifar10}},
    cifar100={{_base_.cifar100}},
    food101={{_base_.food101}},
    stanford_cars={{_base_.stanford_cars}},
    fgvc_aircraft={{_base_.fgvc_aircraft}},
    oxford_pets={{_base_.oxford_pets}},
    flowers102={{_base_.flowers102}},
    caltech101={{_base_.caltech101}},
    sun397={{_base_.sun397}},
    dtd={{_base_.dtd}})
