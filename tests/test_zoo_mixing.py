"""Model-zoo checkpoints into Expansion streams, distillation students and
X-Learner++ hint teachers.

The zoo files are written here from the real stock models, ResNet-18 at a
quarter of its width for the OpenMMLab ones (torchvision's has a fixed
width), in the layouts the zoos use: mmengine's ``{'state_dict', 'meta'}`` for
mmpretrain ``ImageClassifier``, mmdet ``FasterRCNN`` and mmseg
``EncoderDecoder`` (ResNetV1c), a bare state dict for torchvision's ResNet.
"""
import copy
import os.path as osp

import mmdet
import mmpretrain
import mmseg
import pytest
import torch
import torchvision
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from test_models import cls_batch, det_batch
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

register_all_modules()

# ResNet-18 at the width of the OpenMMLab zoo files below (levels of 16, 32,
# 64 and 128 channels).
R18 = dict(type='mmdet.ResNet', depth=18, base_channels=16,
           out_indices=(0, 1, 2, 3))
# What each zoo format's backbone is, as a stream / student config.
TARGET = dict(
    mmpretrain=R18,
    mmdet=R18,
    mmseg=dict(R18, type='mmseg.ResNetV1c', stem_channels=16),
    torchvision=dict(R18, base_channels=64))
# The init_cfg that loads each format with mmengine's plain Pretrained.
PLAIN = dict(mmpretrain='backbone.', mmdet='backbone.', mmseg='backbone.',
             torchvision=None)


def _stock_config(package, path):
    return Config.fromfile(
        osp.join(osp.dirname(package.__file__), '.mim', 'configs', path)).model


def _mmpretrain_classifier():
    cfg = _stock_config(mmpretrain, '_base_/models/resnet18.py')
    cfg.backbone.update(stem_channels=16, base_channels=16)
    cfg.head.in_channels = 128
    return MODELS.build(dict(cfg, _scope_='mmpretrain'))


def _mmdet_faster_rcnn():
    cfg = _stock_config(mmdet, 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    cfg.backbone.update(depth=18, base_channels=16, init_cfg=None)
    cfg.neck.in_channels = [16, 32, 64, 128]
    return MODELS.build(dict(cfg, _scope_='mmdet'))


def _mmseg_fcn():
    cfg = _stock_config(mmseg, '_base_/models/fcn_r50-d8.py')
    cfg.pretrained = None
    cfg.backbone.update(depth=18, stem_channels=16, base_channels=16,
                        norm_cfg=dict(type='BN'))
    cfg.decode_head.update(in_channels=128, channels=16,
                           norm_cfg=dict(type='BN'))
    cfg.auxiliary_head.update(in_channels=64, channels=16,
                              norm_cfg=dict(type='BN'))
    return MODELS.build(dict(cfg, _scope_='mmseg'))


def _perturb_norms(model):
    """Give every norm layer values no initialiser produces, so that a load
    that is skipped, partial or zeroed afterwards is seen."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and t.dim() == 1:
                if name.endswith(('weight', 'running_var')):
                    t.uniform_(0.5, 1.5)
                else:
                    t.normal_(0, 0.1)
    return model


@pytest.fixture(scope='module')
def zoo(tmp_path_factory):
    """{format: (checkpoint path, expected backbone state dict)}."""
    root = tmp_path_factory.mktemp('zoo')
    out = {}
    for fmt, build in (('mmpretrain', _mmpretrain_classifier),
                       ('mmdet', _mmdet_faster_rcnn), ('mmseg', _mmseg_fcn)):
        model = build()
        model.init_weights()
        state = _perturb_norms(model).state_dict()
        path = str(root / f'{fmt}.pth')
        torch.save(dict(meta=dict(mmengine_version='0.10.7'),
                        state_dict=state), path)
        out[fmt] = (path, {k[len('backbone.'):]: v for k, v in state.items()
                           if k.startswith('backbone.')})
    state = _perturb_norms(torchvision.models.resnet18()).state_dict()
    path = str(root / 'torchvision.pth')
    torch.save(state, path)
    out['torchvision'] = (path, {k: v for k, v in state.items()
                                 if not k.startswith('fc.')})
    return out


def init_cfg(kind, fmt, zoo, **kwargs):
    path = zoo[fmt][0]
    if kind == 'Pretrained':
        return dict(type='Pretrained', checkpoint=path, prefix=PLAIN[fmt])
    return dict(type='ZooPretrained', checkpoint=path, **kwargs)


def assert_loaded(module, expected):
    state = module.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


FORMATS = ('mmpretrain', 'mmdet', 'mmseg', 'torchvision')
KINDS = ('Pretrained', 'ZooPretrained')


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('fmt', FORMATS)
def test_zoo_checkpoint_into_expansion_stream(zoo, fmt, kind):
    model = MODELS.build(dict(
        type='ExpandedBackbone', tasks=('cls', 'det'), backbone=R18,
        stream_overrides=dict(det=dict(TARGET[fmt],
                                       init_cfg=init_cfg(kind, fmt, zoo)))))
    model.init_weights()
    expected = zoo[fmt][1]
    assert_loaded(model.streams['det'], expected)
    # The other stream keeps its own initialisation.
    assert not torch.equal(model.streams['cls'].layer1[0].conv1.weight,
                           expected['layer1.0.conv1.weight'])
    assert (model.streams['cls'].layer1[0].bn1.weight == 1).all()


@pytest.mark.parametrize('fmt', ('mmpretrain', 'torchvision'))
def test_mmpretrain_resnet_keeps_loaded_residual_norms(zoo, fmt):
    """mmpretrain's ResNet zeroes each block's last norm after any init_cfg
    whose type is not literally 'Pretrained'; ZooPretrained stops it."""
    width = TARGET[fmt]['base_channels']
    backbone = MODELS.build(dict(
        TARGET[fmt], type='mmpretrain.ResNet', stem_channels=width,
        init_cfg=init_cfg('ZooPretrained', fmt, zoo)))
    backbone.init_weights()
    assert_loaded(backbone, zoo[fmt][1])


@pytest.fixture(scope='module')
def expansion_checkpoint(tmp_path_factory):
    """A demo Expansion model (cls + det streams: ResNet-18 at base width 16)
    saved as the Runner would, and its config."""
    cfg = two_task_demo_cfg()
    model = MODELS.build(cfg)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('expansion') / 'iter_1.pth')
    torch.save(dict(meta=dict(), state_dict=_perturb_norms(model).state_dict()),
               path)
    return cfg, path, model


def two_task_demo_cfg():
    cfg = copy.deepcopy(Config.fromfile('configs/demo/expansion_demo.py').model)
    del cfg.task_models['seg']
    del cfg.neck.out_levels['seg']
    return cfg


def test_zoo_checkpoints_into_distiller_student(zoo, expansion_checkpoint,
                                                tmp_path):
    """Through the Squeeze Stage's MultiTaskDistiller: the student backbone's
    init_cfg loads each zoo format; the squeeze checkpoint's student loads
    back with ZooPretrained."""
    teacher_cfg, teacher_path, _ = expansion_checkpoint
    # The student is any backbone config (every format and init is covered by
    # the stream tests); one distiller per init type.
    for fmt, kind in (('mmdet', 'Pretrained'), ('torchvision', 'ZooPretrained')):
        distiller = MODELS.build(dict(
            type='MultiTaskDistiller', teacher=teacher_cfg,
            teacher_checkpoint=teacher_path,
            student=dict(TARGET[fmt], init_cfg=init_cfg(kind, fmt, zoo))))
        distiller.init_weights()
        assert_loaded(distiller.student, zoo[fmt][1])
    squeeze = str(tmp_path / 'squeeze.pth')
    torch.save(dict(meta=dict(), state_dict=distiller.state_dict()), squeeze)
    backbone = MODELS.build(dict(
        TARGET['torchvision'],
        init_cfg=dict(type='ZooPretrained', checkpoint=squeeze)))
    backbone.init_weights()
    assert_loaded(backbone, zoo['torchvision'][1])


def test_expansion_stream_into_backbone(expansion_checkpoint):
    _, path, model = expansion_checkpoint
    backbone = MODELS.build(dict(R18, init_cfg=dict(
        type='ZooPretrained', checkpoint=path, task='det')))
    backbone.init_weights()
    assert_loaded(backbone, model.backbone.streams['det'].state_dict())
    with pytest.raises(KeyError, match=r"streams \['cls', 'det'\]; set "
                       r'init_cfg.task'):
        MODELS.build(dict(R18, init_cfg=dict(
            type='ZooPretrained', checkpoint=path))).init_weights()


def _first_conv(module):
    return next(p for n, p in module.named_parameters() if 'conv' in n
                or n.startswith('stem.0'))


@pytest.mark.parametrize('fmt,target,plain,zoo_cfg,message', [
    # a detector checkpoint without prefix='backbone.'
    ('mmdet', R18, dict(prefix=None), dict(prefix=''),
     r'missing \[bn1.bias, .*unexpected \[backbone.bn1.bias'),
    # an mmseg ResNetV1c (deep stem) into a ResNet with the plain stem
    ('mmseg', R18, dict(prefix='backbone.'), dict(),
     r'missing \[bn1.bias, bn1.running_mean.*unexpected \[stem.0.weight'),
])
def test_wrong_layout_is_silent_with_pretrained_and_an_error_with_zoo(
        zoo, fmt, target, plain, zoo_cfg, message):
    path, expected = zoo[fmt]
    backbone = MODELS.build(dict(target, init_cfg=dict(
        type='Pretrained', checkpoint=path, **plain)))
    before = _first_conv(backbone).clone()
    backbone.init_weights()  # only logs the keys it could not match
    assert torch.equal(_first_conv(backbone), before)
    with pytest.raises(KeyError, match=message) as error:
        MODELS.build(dict(target, init_cfg=dict(
            type='ZooPretrained', checkpoint=path, **zoo_cfg))).init_weights()
    assert path in str(error.value)


def test_zoo_init_errors_name_the_file(zoo, tmp_path):
    path = zoo['mmdet'][0]
    with pytest.raises(KeyError, match=f'no key of {path} starts with '
                       'prefix "model."'):
        MODELS.build(dict(R18, init_cfg=dict(
            type='ZooPretrained', checkpoint=path,
            prefix='model.'))).init_weights()
    # torchvision's ResNet-18 into a ResNet-34
    with pytest.raises(KeyError, match=r'missing \[layer1.2.bn1.bias'):
        MODELS.build(dict(TARGET['torchvision'], depth=34, init_cfg=dict(
            type='ZooPretrained',
            checkpoint=zoo['torchvision'][0]))).init_weights()
    missing = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match=missing):
        MODELS.build(dict(R18, init_cfg=dict(
            type='ZooPretrained', checkpoint=missing))).init_weights()


# ----------------------------------------------------------------------------
# X-Learner++ hint teachers.

STREAM = dict(channels=(16, 32, 64, 128), strides=(4, 8, 16, 32))


def build_hint(backbone, **kwargs):
    return MODELS.build(dict(
        type='HintTeacher', task='det', backbone=backbone,
        in_channels=STREAM['channels'], in_strides=STREAM['strides'],
        **kwargs))


@pytest.mark.parametrize('kind', KINDS)
def test_zoo_checkpoints_into_hint_teacher(zoo, kind):
    for fmt in FORMATS:
        hint = build_hint(dict(TARGET[fmt], init_cfg=init_cfg(kind, fmt, zoo)))
        teacher = hint.teacher.streams['det']
        assert_loaded(teacher, zoo[fmt][1])
        assert not teacher.training
        assert not any(p.requires_grad for p in teacher.parameters())
        assert [n for n, _ in hint.named_parameters()] == [
            f'guides.{level}.proj.{p}' for level in range(4)
            for p in ('conv.weight', 'bn.weight', 'bn.bias')]
        width = zoo[fmt][1]['layer4.1.conv2.weight'].shape[0]
        assert hint.guides['3'].proj.conv.weight.shape == (width, 128, 1, 1)


def test_hint_teacher_build_errors(zoo, tmp_path):
    missing = str(tmp_path / 'teacher.pth')
    with pytest.raises(FileNotFoundError,
                       match=f'model.hint_teachers.det: teacher checkpoint '
                       f'{missing} does not exist'):
        build_hint(dict(R18, init_cfg=dict(type='ZooPretrained',
                                           checkpoint=missing)))
    with pytest.raises(ValueError, match='init_cfg must load the teacher'):
        build_hint(R18)
    loaded = dict(R18, init_cfg=init_cfg('ZooPretrained', 'mmdet', zoo))
    with pytest.raises(ValueError, match='level 4 is not among'):
        build_hint(loaded, levels=(4, ))
    # mmseg's FCN backbone is dilated: output stride 8, not 32
    with pytest.raises(ValueError, match='level 3 has stride 32 in the '
                       'stream but 8 in the teacher'):
        build_hint(dict(_stock_config(mmseg, '_base_/models/fcn_r50-d8.py')
                        .backbone, **TARGET['mmseg'], norm_cfg=dict(type='BN'),
                        init_cfg=init_cfg('ZooPretrained', 'mmseg', zoo)),
                   levels=(3, ))


def test_hint_teacher_follows_device_and_dtype_moves(zoo):
    hint = build_hint(dict(R18, init_cfg=init_cfg('ZooPretrained', 'mmdet',
                                                  zoo)), levels=(3, ))
    hint.to(torch.float64)
    assert hint.teacher.streams['det'].conv1.weight.dtype == torch.float64
    assert hint.guides['3'].proj.conv.weight.dtype == torch.float64


@pytest.fixture(scope='module')
def plusplus(zoo):
    """The two-task demo Expansion model with X-Learner++ hint teachers: an
    mmpretrain ResNet-18 for cls (last level), an mmdet one for det (all)."""
    cfg = two_task_demo_cfg()
    cfg.hint_teachers = dict(
        cls=dict(backbone=dict(
            R18, type='mmpretrain.ResNet', stem_channels=16,
            init_cfg=init_cfg('ZooPretrained', 'mmpretrain', zoo)),
            levels=(3, ), loss_weight=2.0),
        det=dict(backbone=dict(
            R18, init_cfg=init_cfg('Pretrained', 'mmdet', zoo))))
    model = MODELS.build(cfg)
    model.init_weights()
    return model


@pytest.mark.slow
def test_plusplus_hint_losses_train_guides_not_teachers(zoo, plusplus):
    model = plusplus
    teachers = {t: h.teacher.streams[t] for t, h in model.hints.items()}
    for task, fmt in (('cls', 'mmpretrain'), ('det', 'mmdet')):
        # loaded at build, not overwritten by XLearner.init_weights
        assert_loaded(teachers[task], zoo[fmt][1])
    frozen = {t: copy.deepcopy(m.state_dict()) for t, m in teachers.items()}

    # In the optimizer and the state dict: guidance layers, not teachers.
    optim_wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9)))
    optimised = {id(p) for g in optim_wrapper.optimizer.param_groups
                 for p in g['params']}
    assert {id(p) for p in model.hints.parameters()} <= optimised
    assert not any(id(p) in optimised for m in teachers.values()
                   for p in m.parameters())
    state = model.state_dict()
    assert 'hints.cls.guides.3.proj.conv.weight' in state
    assert 'hints.det.guides.0.proj.bn.running_var' in state
    assert not [k for k in state if 'teacher' in k]
    assert len(model.hints['det'].guides) == 4

    model.train()
    batch = dict(cls=cls_batch(['folder_cls', 'annfile_cls']),
                 det=det_batch(['coco_a', 'coco_b']))
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert losses['cls.hint_loss'] > 0 and losses['det.hint_loss'] > 0
    # The hint alone trains the guidance layers and the stream it hints.
    losses['cls.hint_loss'].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.hints['cls'].guides.parameters())
    assert model.backbone.streams['cls'].layer4[1].bn2.weight.grad.abs(
    ).sum() > 0
    assert all(p.grad is None for p in model.task_models.parameters())

    guide = model.hints['cls'].guides['3'].proj.conv.weight
    before = guide.detach().clone()
    log_vars = model.train_step(batch, optim_wrapper)
    assert 'cls.hint_loss' in log_vars and 'det.hint_loss' in log_vars
    assert not torch.equal(guide, before)
    for task, teacher in teachers.items():
        assert not teacher.training, task
        for key, value in teacher.state_dict().items():
            assert torch.equal(value, frozen[task][key]), (task, key)

    # An X-Learner++ checkpoint (no teacher inside) loads strictly.
    model.load_state_dict(copy.deepcopy(model.state_dict()), strict=True)


def test_plusplus_hint_loss_is_shared_by_the_task_sources(plusplus):
    """Eq. 1 with hints: <task>.hint_loss is shared by the task's sources,
    like the class-agnostic RPN loss: ell_{t,n} = own loss + hint."""
    one = torch.tensor(1.)
    losses = {
        'cls.folder_cls.loss': one * 2, 'cls.annfile_cls.loss': one * 4,
        'cls.hint_loss': one * 10,
        'det.coco_a.loss_cls': one * 3, 'det.coco_b.loss_cls': one * 5,
        'det.hint_loss': one * 20,
    }
    plusplus.reconcile = True
    loss, log_vars = plusplus.parse_losses(losses)
    assert log_vars['cls.task_loss'].item() == pytest.approx(3 + 10)
    assert log_vars['det.task_loss'].item() == pytest.approx(4 + 20)
    assert log_vars['cls.hint_loss'].item() == 10
    assert loss.item() == pytest.approx(
        (2 + 4 + 2 * 10 + 3 + 5 + 2 * 20) / 4)


def test_plusplus_hints_before_tau_only(plusplus):
    """hint_phase='before_tau': the hints supervise the streams only while
    they train separately; after tau hint_loss is 0 and the guidance layers
    get zero gradients, not none (DDP, with find_unused_parameters=False,
    needs a gradient for every parameter)."""
    model = plusplus
    batch = dict(cls=cls_batch(['folder_cls', 'annfile_cls']),
                 det=det_batch(['coco_a', 'coco_b']))
    data = model.data_preprocessor(batch, True)
    model.hint_phase = 'before_tau'
    try:
        model.reconcile = False
        losses = model(**data, mode='loss')
        assert losses['cls.hint_loss'] > 0 and losses['det.hint_loss'] > 0
        model.reconcile = True
        model.zero_grad(set_to_none=True)
        losses = model(**data, mode='loss')
        assert losses['cls.hint_loss'] == 0 and losses['det.hint_loss'] == 0
        model.parse_losses(losses)[0].backward()
        for name, p in model.hints.named_parameters():
            assert p.grad is not None and not p.grad.any(), name
    finally:
        model.hint_phase = 'always'
        model.reconcile = True
    with pytest.raises(ValueError, match="model.hint_phase must be one of"):
        MODELS.build(dict(two_task_demo_cfg(), hint_phase='after_tau'))
