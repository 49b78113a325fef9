# CIFAR-10 and CIFAR-100 (one file: they share the pipeline): 10 / 100
# classes, 50,000 train / 10,000 test images of 32x32, no val split.
# mmpretrain reads the python-pickle versions (not downloaded here):
#   data/cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
#   data/cifar100/cifar-100-python/{train,test,meta}
# The images are RGB arrays in memory (nothing to load): upsampled to 224x224.
cifar_pipeline = [
    dict(
        type='mmpretrain.ResizeEdge',
        scale=224,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='mmpretrain.PackInputs'),
]
cifar10 = dict(
    train=dict(
        dataset=dict(
            type='mmpretrain.CIFAR10',
            data_root='data/cifar10',
            split='train',
            download=False,
            pipeline=cifar_pipeline)),
    test=dict(
        dataset=dict(
            type='mmpretrain.CIFAR10',
            data_root='data/cifar10',
            split='test',
            download=False,
            pipeline=cifar_pipeline)),
    data_preprocessor=dict(to_rgb=False))  # already RGB
cifar100 = dict(
    train=dict(
        dataset=dict(
            type='mmpretrain.CIFAR100',
            data_root='data/cifar100',
            split='train',
            download=False,
            pipeline=cifar_pipeline)),
    test=dict(
        dataset=dict(
            type='mmpretrain.CIFAR100',
            data_root='data/cifar100',
            split='test',
            download=False,
            pipeline=cifar_pipeline)),
    data_preprocessor=dict(to_rgb=False))
