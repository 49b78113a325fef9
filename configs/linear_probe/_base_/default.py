# Linear-probe protocol of the paper (Sec. 4.2, "AVG Cls"), CLIP's (its ref.
# [49]): frozen backbone, global-average-pooled last-stage features of
# 224x224 images, multinomial logistic regression fitted with L-BFGS (at most
# 1,000 iterations), L2 strength lambda searched over 9 values spread evenly
# in log space over 1e-1..1e-5 on a validation split, final fit on
# train + val, top-1 on the test split. Run with
#   python tools/linear_probe.py CONFIG EXPORTED_BACKBONE.pth
# (xlearner_mm/evaluation/linear_probe.py documents every key).
default_scope = 'xlearner_mm'

# The exported backbone: mmdet's ResNet-50 (plain ResNet keys); only its
# last stage (2048 channels) is used.
backbone = dict(
    type='mmdet.ResNet',
    depth=50,
    num_stages=4,
    out_indices=(3, ),
    norm_cfg=dict(type='BN', requires_grad=True),
    style='pytorch')
# The normalisation the backbone was pre-trained with (ImageNet statistics,
# RGB: the classification task model of configs/_base_/models/).
data_preprocessor = dict(
    type='mmpretrain.ClsDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

# CLIP's evaluation transform: shorter side to 224 (PIL bicubic), centre crop
# 224x224. Given to every dataset whose config carries no pipeline.
image_size = 224
pipeline = [
    dict(type='mmpretrain.LoadImageFromFile'),
    dict(
        type='mmpretrain.ResizeEdge',
        scale=image_size,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='mmpretrain.CenterCrop', crop_size=image_size),
    dict(type='mmpretrain.PackInputs'),
]
# Keys a split's dataloader config leaves out. Every sample once, in order.
dataloader = dict(
    batch_size=64,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False))

probe = dict(
    num_lambdas=9,  # two per decade
    lambda_range=(1e-1, 1e-5),
    max_iter=1000,
    tol=1e-4,  # L-BFGS stops at gradient max-abs <= tol (sklearn's default)
    # Datasets without a val split: this fraction of each class of train is
    # held out (seeded) to choose lambda.
    val_fraction=0.2,
    seed=0)
device = None  # cuda when available
