# X-Learner++ (paper Sec. 3.4): the Expansion Stage of expansion_r50.py with
# extra FitNets hints from single-task single-source (SSST) pretrained models
# besides the labels of the sources: a frozen ImageNet ResNet-50 for the
# classification stream and the ResNet-50 of a COCO Faster R-CNN for the
# detection stream. A guidance layer (1x1 conv + BN) per hinted level maps
# the stream's feature F^t to the teacher's; the loss `<task>.hint_loss` joins
# the task's loss (shared by its sources, see XLearner.parse_losses).
#
# The teachers' checkpoints are read from checkpoints/ (the build fails with
# the task and path if one is missing). Download them from the model zoos
# (mmpretrain configs/resnet/metafile.yml, mmdet configs/faster_rcnn/
# metafile.yml):
#
#   mkdir -p checkpoints && cd checkpoints
#   wget https://download.openmmlab.com/mmclassification/v0/resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth
#   wget https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r50_fpn_1x_coco/faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth
#
#   bash tools/dist_train.sh configs/xlearner/expansion_r50_plusplus.py 8
_base_ = './expansion_r50.py'

cls_teacher = 'checkpoints/resnet50_8xb32_in1k_20210831-ea4938fc.pth'
det_teacher = ('checkpoints/faster_rcnn_r50_fpn_1x_coco_20200130-'
               '047c8118.pth')

# The paper gives no hint weight or levels. Each task is hinted at the
# levels its heads read: the last for the classifier, all four (FPN) for the
# detector. ZooPretrained loads the teachers' `backbone.` keys strictly.
model = dict(
    hint_teachers=dict(
        cls=dict(
            backbone=dict(
                type='mmpretrain.ResNet',
                depth=50,
                out_indices=(0, 1, 2, 3),
                init_cfg=dict(type='ZooPretrained', checkpoint=cls_teacher)),
            levels=(3, ),
            loss_weight=1.0),
        det=dict(
            backbone=dict(
                type='mmdet.ResNet',
                depth=50,
                out_indices=(0, 1, 2, 3),
                init_cfg=dict(type='ZooPretrained', checkpoint=det_teacher)),
            levels=(0, 1, 2, 3),
            loss_weight=1.0)))

# The detection guidance layers train at the detection stream's lr.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'hints.det': dict(lr_mult=0.1)}))
