# AVG Cls of a whole expanded model (X-Learner's Expansion model, X-Learner_p's
# pruned one, X-Learner_r's final HalfResNet-50 one): the protocol of
# avg_cls_10datasets.py on the classification task's F^cls, the pooled last
# level of PretrainedExpandedBackbone (2048 channels with ResNet-50 streams,
# 1440 with HalfResNet-50 ones), from a whole expanded export:
#
#   python tools/export_backbone.py work_dirs/expansion_r50/iter_150000.pth \
#       work_dirs/export/expanded.pth
#   python tools/linear_probe.py configs/linear_probe/avg_cls_10datasets_expanded.py \
#       work_dirs/export/expanded.pth
#
# backbone.combine='concat' probes every task's F^t side by side instead.
_base_ = ['./avg_cls_10datasets.py']

backbone = dict(
    _delete_=True,
    type='xlearner_mm.PretrainedExpandedBackbone',
    checkpoint=None,  # the checkpoint given to tools/linear_probe.py
    task='cls',
    out_indices=(3, ))
