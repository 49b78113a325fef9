# Detection transfer of paper Sec. 4.2: Faster R-CNN R50-FPN fine-tuned on
# PASCAL VOC07+12 for 24k iterations at batch 16 (2 images x 8 GPUs), tested
# on VOC2007 test with shorter edges of 800 pixels. Everything else is the
# stock mmdet config; the backbone starts from an X-Learner export with
# plain V1b ResNet keys (tools/export_backbone.py of a Squeeze checkpoint
# whose student is mmdet.ResNet, or --task of an Expansion checkpoint):
#
#   python tools/export_backbone.py work_dirs/squeeze/iter_N.pth \
#       work_dirs/export/xlearner_r50.pth
#   bash tools/dist_train.sh configs/downstream/faster-rcnn_r50_fpn_xlearner_24k_voc0712.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/export/xlearner_r50.pth
#
# The paper searches the learning rate in [0.001, 0.05]: override
# optim_wrapper.optimizer.lr (the stock 0.01 is the default here).
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint='work_dirs/export/xlearner_r50.pth')))

# 24k iterations instead of 4 epochs of the 3x repeated VOC07+12; the lr
# drops x0.1 at 3/4 of training, where the stock schedule drops it.
max_iters = 24000
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=4000)
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[18000],
        gamma=0.1)
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000))
log_processor = dict(by_epoch=False)
# 2 images per GPU (the stock value) on 8 GPUs: batch 16.
train_dataloader = dict(batch_size=2)

# Evaluation with the shorter edge scaled to 800 pixels (stock: 600).
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
