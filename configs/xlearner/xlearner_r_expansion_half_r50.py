# X-Learner_r, stage 5 of 5: the Expansion Stage of expansion_r50.py on the
# two HalfResNet-50 students of stages 3 and 4, each stream initialised from
# its task's student (ZooPretrained reads the `student.` keys of a Squeeze
# checkpoint, strictly), joined by reconciliation layers. The final model,
# two HalfResNet-50 streams (2 x 11.80 M) and their reconciliation layers
# (2.94 M), 26.54 M in all, has about the parameters of one ResNet-50
# (23.51 M); evaluate it whole with PretrainedExpandedBackbone (README,
# "Using the pre-trained backbone"). The whole chain:
# configs/xlearner/xlearner_r_r50.py.
_base_ = './expansion_r50.py'

# HalfResNet-50's level widths (4 x 48, 88, 184, 360).
half_r50_widths = [192, 352, 736, 1440]
squeeze_dir = 'work_dirs/xlearner_r_r50/'
model = dict(
    backbone=dict(
        backbone=dict(type='HalfResNet'),
        stream_overrides=dict(
            _delete_=True,
            cls=dict(init_cfg=dict(
                type='ZooPretrained',
                checkpoint=squeeze_dir + 'squeeze_cls/iter_150000.pth')),
            det=dict(init_cfg=dict(
                type='ZooPretrained',
                checkpoint=squeeze_dir + 'squeeze_det/iter_150000.pth')))),
    task_models=dict(
        cls=dict(head=dict(shared=dict(in_channels=half_r50_widths[-1]))),
        det=dict(neck=dict(in_channels=half_r50_widths))))
