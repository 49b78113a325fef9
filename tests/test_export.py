"""tools/export_backbone.py and xlearner_mm.apis.export: exports of Squeeze and
Expansion checkpoints, and the exported ResNet-50 in unmodified stock
mmdet / mmseg / mmpretrain configs and in configs/downstream."""
import copy
import hashlib
import os
import os.path as osp
import subprocess
import sys

import pytest
from _tools import REPO_ROOT, load_tool
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.runner import Runner, load_checkpoint

import mmdet
import mmpretrain
import mmseg
from xlearner_mm.apis import export_backbone, load_expanded_export
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

register_all_modules()

EXPANSION_DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'expansion_demo.py')
TINY_STUDENT = dict(
    type='mmdet.ResNet', depth=18, base_channels=16, num_stages=4,
    out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), style='pytorch')


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Deterministic random values in every parameter and buffer (BN
    statistics included), so that no freshly initialised tensor can match."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if name.endswith('running_var'):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point():
                # small, so that features stay finite through the network
                tensor.copy_(0.05 * torch.randn(tensor.shape, generator=gen))
            else:
                tensor.fill_(int(torch.randint(1, 100, (1, ), generator=gen)))
    return module


def save_mmengine_checkpoint(state_dict: dict, cfg_text: str, path: str,
                             layout=None) -> str:
    """What mmengine's CheckpointHook writes, as far as export reads it, with
    the model's layout in meta as CheckpointConsistencyHook saves it."""
    meta = dict(cfg=cfg_text, iter=7, epoch=0)
    if layout is not None:
        meta['task_layout'] = layout.to_dict()
    torch.save(dict(meta=meta, state_dict=state_dict,
                    optimizer=dict(state={}, param_groups=[])), path)
    return str(path)


def assert_same_tensors(actual: dict, expected: dict):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


# ----------------------------------------------------------------------------
# Exports of tiny checkpoints.

@pytest.fixture(scope='module')
def expansion(tmp_path_factory):
    """The demo XLearner (tiny, cls/det/seg) saved as an mmengine checkpoint
    with its config text; the det stream is pruned-looking: half of its
    first conv's filters are zero."""
    cfg = Config.fromfile(EXPANSION_DEMO)
    model = randomize_(MODELS.build(cfg.model), seed=0)
    with torch.no_grad():
        model.backbone.streams['det'].conv1.weight[::2] = 0
    # mmengine dumps the whole config; the model part is what export reads
    # (and is 6x faster to format than all of it).
    path = save_mmengine_checkpoint(
        model.state_dict(), Config(dict(model=cfg.model)).pretty_text,
        tmp_path_factory.mktemp('expansion') / 'iter_7.pth', model.layout)
    return model, cfg, path


@pytest.fixture(scope='module')
def squeeze(expansion, tmp_path_factory):
    """A real MultiTaskDistiller (teacher: the tiny expansion checkpoint,
    student: a tiny V1b ResNet) saved as an mmengine checkpoint."""
    _, expansion_cfg, expansion_path = expansion
    cfg = Config(dict(
        default_scope='xlearner_mm',
        model=dict(type='MultiTaskDistiller', teacher=expansion_cfg.model,
                   teacher_checkpoint=expansion_path, student=TINY_STUDENT)))
    model = MODELS.build(cfg.model)
    randomize_(model.student, seed=1)
    path = save_mmengine_checkpoint(
        model.state_dict(), cfg.pretty_text,
        tmp_path_factory.mktemp('squeeze') / 'iter_3.pth', model.layout)
    return model, cfg, path


def test_squeeze_export_is_the_student(squeeze, tmp_path):
    model, cfg, path = squeeze
    state_dict = model.state_dict()
    assert any(k.startswith('guidance.det.') for k in state_dict)
    out = str(tmp_path / 'student.pth')
    export_backbone(path, out)
    exported = torch.load(out, weights_only=True)
    assert_same_tensors(exported['state_dict'], model.student.state_dict())
    assert 'conv1.weight' in exported['state_dict']
    meta = exported['meta']
    assert meta['stage'] == 'squeeze' and meta['task'] is None
    assert meta['tasks'] == ['cls', 'det', 'seg']
    assert meta['sources'] == dict(cls=['folder_cls', 'annfile_cls'],
                                   det=['coco_a', 'coco_b'], seg=['ade'])
    assert meta['deep_stem'] is False
    assert meta['backbone']['type'] == 'mmdet.ResNet'
    assert meta['config_hash'] == hashlib.sha256(
        cfg.pretty_text.encode()).hexdigest()
    assert meta['source_checkpoint'] == osp.abspath(path)
    assert meta['iter'] == 7
    # A stock ResNet of the student's config takes it strictly.
    MODELS.build(TINY_STUDENT).load_state_dict(exported['state_dict'])


@pytest.mark.parametrize('task', ['cls', 'det', 'seg'])
def test_expansion_task_export_is_its_stream(expansion, tmp_path, task):
    model, _, path = expansion
    out = str(tmp_path / f'{task}.pth')
    export_backbone(path, out, task=task)
    exported = torch.load(out, weights_only=True)
    stream = model.backbone.streams[task].state_dict()
    assert_same_tensors(exported['state_dict'], stream)
    assert next(iter(exported['state_dict'])) == 'conv1.weight'
    meta = exported['meta']
    assert (meta['stage'], meta['task'], meta['tasks']) == (
        'expansion', task, [task])
    assert meta['checkpoint_tasks'] == ['cls', 'det', 'seg']
    assert meta['sources'] == {task: dict(
        cls=['folder_cls', 'annfile_cls'], det=['coco_a', 'coco_b'],
        seg=['ade'])[task]}
    assert meta['backbone']['depth'] == 18 and meta['deep_stem'] is False
    if task == 'det':  # the pruned filters stay zero
        assert exported['state_dict']['conv1.weight'][::2].abs().sum() == 0
        assert exported['state_dict']['conv1.weight'][1::2].abs().sum() > 0


def test_whole_expansion_export_rebuilds(expansion, tmp_path):
    model, _, path = expansion
    out = str(tmp_path / 'expanded.pth')
    export_backbone(path, out)
    exported = torch.load(out, weights_only=True)
    expected = {k: v for k, v in model.state_dict().items()
                if k.startswith(('backbone.', 'neck.'))}
    assert_same_tensors(exported['state_dict'], expected)
    meta = exported['meta']
    assert meta['stage'] == 'expansion' and meta['task'] is None
    assert meta['custom_imports'] == dict(imports=['xlearner_mm'])
    assert meta['task_layout']['tasks'] == ['cls', 'det', 'seg']
    assert meta['task_layout']['backbone']['backbone']['depth'] == 18

    backbone, neck = load_expanded_export(out)  # loads strictly
    model.eval()
    backbone.eval()
    neck.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():  # F^seg, which reads every stream and reconciler into seg
        got = neck(backbone(x), 'seg')
        want = model.extract_task_feat(x, 'seg')
    assert all(w.isfinite().all() and w.abs().max() > 0 for w in want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)

    # The same through Pretrained init_cfgs, the way a config would say it.
    backbone = MODELS.build(dict(
        meta['task_layout']['backbone'],
        init_cfg=dict(type='Pretrained', checkpoint=out, prefix='backbone.')))
    neck = MODELS.build(dict(
        meta['task_layout']['neck'], in_channels=backbone.out_channels,
        strides=backbone.out_strides,
        init_cfg=dict(type='Pretrained', checkpoint=out, prefix='neck.')))
    backbone.init_weights()
    neck.init_weights()
    assert_same_tensors(
        {**backbone.state_dict(prefix='backbone.'),
         **neck.state_dict(prefix='neck.')}, expected)


def test_export_written_before_layouts_still_loads(expansion, tmp_path):
    """Whole exports of the previous version carry the configs in
    ``meta['model']`` instead of ``meta['task_layout']``."""
    model, _, path = expansion
    exported = export_backbone(path)
    layout = exported['meta'].pop('task_layout')
    exported['meta']['model'] = dict(
        backbone=dict(layout['backbone'], type='xlearner_mm.ExpandedBackbone',
                      tasks=layout['tasks']),
        neck=dict(layout['neck'], type='xlearner_mm.ReconciliationNeck'))
    old = str(tmp_path / 'old_expanded.pth')
    torch.save(exported, old)
    backbone, neck = load_expanded_export(old)
    assert_same_tensors(
        {**backbone.state_dict(prefix='backbone.'),
         **neck.state_dict(prefix='neck.')}, exported['state_dict'])


def test_cli_writes_a_file_stock_torch_loads(expansion, tmp_path, capsys):
    """The CLI; its output loads with weights_only=True in a process that
    never imports xlearner_mm (no allow-list needed)."""
    _, _, path = expansion
    out = str(tmp_path / 'det.pth')
    load_tool('export_backbone').main([path, out, '--task', 'det'])
    # The demo's det stream is a ResNet-18 at 16 channels: no stock
    # ResNet-50 config fits it, whatever its stem.
    assert ('fits: no stock config: a BasicBlock ResNet with stage blocks '
            '[2, 2, 2, 2], base_channels 16 and stem_channels 16') in \
        capsys.readouterr().out
    check = subprocess.run(
        [sys.executable, '-c',
         'import sys, torch; e = torch.load(sys.argv[1], weights_only=True); '
         'print(e["meta"]["task"], len(e["state_dict"]))', out],
        capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ['det', '120']


def test_export_errors(expansion, squeeze, tmp_path):
    _, _, expansion_path = expansion
    _, _, squeeze_path = squeeze
    with pytest.raises(ValueError, match=r"no sub-backbone for task \"ocr\".*"
                       r"\['cls', 'det', 'seg'\]"):
        export_backbone(expansion_path, task='ocr')
    with pytest.raises(ValueError, match='meaningless.*Squeeze'):
        export_backbone(squeeze_path, task='det')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        export_backbone(str(tmp_path / 'missing.pth'))
    plain = str(tmp_path / 'plain.pth')
    save_mmengine_checkpoint(
        {'backbone.conv1.weight': torch.zeros(1)}, '', plain)
    with pytest.raises(ValueError, match=r"Cannot tell the stage.*\['backbone'\]"):
        export_backbone(plain)
    exported = str(tmp_path / 'exported.pth')
    export_backbone(squeeze_path, exported)
    with pytest.raises(ValueError, match='already an exported backbone'):
        export_backbone(exported)
    assert sorted(os.listdir(tmp_path)) == ['exported.pth', 'plain.pth']


def test_checkpoint_without_saved_layout(expansion, tmp_path):
    """A checkpoint written before layouts were saved: its tasks come from
    its keys; its sources and the expanded backbone's config need its
    training config (``config``), which is built, not read from the file."""
    model, cfg, path = expansion
    legacy = save_mmengine_checkpoint(
        model.state_dict(), 'import os\nos.mkdir("ran")\n',
        tmp_path / 'legacy.pth')
    meta = export_backbone(legacy, task='det')['meta']
    assert meta['checkpoint_tasks'] == ['cls', 'det', 'seg']
    assert meta['sources'] == dict(det=None) and meta['backbone'] is None
    out = str(tmp_path / 'expanded.pth')
    with pytest.raises(ValueError, match='no saved layout.*--config'):
        export_backbone(legacy, out)
    export_backbone(legacy, out, config=EXPANSION_DEMO)
    assert torch.load(out, weights_only=True)['meta']['sources'][
        'det'] == ['coco_a', 'coco_b']
    load_expanded_export(out)
    assert not (tmp_path / 'ran').exists()


# ----------------------------------------------------------------------------
# The exported ResNet-50 in unmodified stock configs.

def _package_config(package, relative: str) -> str:
    return osp.join(osp.dirname(package.__file__), '.mim', 'configs', relative)


@pytest.fixture(scope='module')
def r50_exports(tmp_path_factory):
    """ResNet-50 exports of two Squeeze checkpoints, made from a
    ``student.``-prefixed state dict of random (seeded) weights: a V1b
    student (mmdet.ResNet) and a V1c one (mmseg.ResNetV1c, deep stem)."""
    root = tmp_path_factory.mktemp('r50')
    exports = {}
    for name, student, seed in (
            ('v1b', dict(type='mmdet.ResNet', depth=50), 10),
            ('v1c', dict(type='mmseg.ResNetV1c', depth=50), 11)):
        weights = randomize_(MODELS.build(student), seed).state_dict()
        state_dict = {f'student.{k}': v for k, v in weights.items()}
        state_dict['guidance.cls.3.conv.weight'] = torch.zeros(1)
        cfg_text = Config(dict(model=dict(student=student))).pretty_text
        ckpt = save_mmengine_checkpoint(state_dict, cfg_text,
                                        root / f'squeeze_{name}.pth')
        out = str(root / f'xlearner_r50_{name}.pth')
        export_backbone(ckpt, out)
        exports[name] = (out, weights)
    return exports


def _build_with_backbone_from(cfg: Config, checkpoint: str):
    """The stock model, with only its backbone pointed at ``checkpoint``, after
    ``init_weights``."""
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
    if 'pretrained' in cfg.model:  # mmseg's way to say the same
        cfg.model.pretrained = None
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = ROOT_MODELS.build(cfg.model)
    model.init_weights()
    return model


def backbone_mismatch(model, weights: dict):
    """(missing, unexpected, differing) keys of the model's backbone against
    the export: mmengine's Pretrained init loads with strict=False and only
    logs the first two, so they are checked here."""
    own = model.backbone.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    differing = sorted(k for k in set(own) & set(weights)
                       if not torch.equal(own[k], weights[k]))
    return missing, unexpected, differing


# Which export each stock config takes.
STOCK = [
    (mmdet, 'pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py', 'v1b'),
    (mmdet, 'pascal_voc/retinanet_r50_fpn_1x_voc0712.py', 'v1b'),
    (mmseg, 'deeplabv3/deeplabv3_r50b-d8_4xb2-80k_cityscapes-512x1024.py',
     'v1b'),
    (mmseg, 'deeplabv3/deeplabv3_r50-d8_4xb4-40k_voc12aug-512x512.py', 'v1c'),
    (mmpretrain, 'resnet/resnet50_8xb32_in1k.py', 'v1b'),
]


@pytest.fixture(scope='module')
def stock_model(r50_exports):
    """``stock_model(index)``: STOCK[index]'s model initialised from its
    export, built once per module."""
    built = {}

    def get(index):
        if index not in built:
            package, config, variant = STOCK[index]
            built[index] = _build_with_backbone_from(
                Config.fromfile(_package_config(package, config)),
                r50_exports[variant][0])
        return built[index]

    return get


@pytest.mark.parametrize('index', range(len(STOCK)),
                         ids=[c.split('/')[-1] for _, c, _ in STOCK])
def test_export_loads_into_stock_config(r50_exports, stock_model, index):
    _, weights = r50_exports[STOCK[index][2]]
    assert backbone_mismatch(stock_model(index), weights) == ([], [], [])


def test_export_of_the_other_stem_does_not_fit(r50_exports, stock_model):
    """A V1b export against a V1c config and the reverse fail the key check,
    although mmengine's Pretrained init (strict=False) takes them without an
    error: layer1-4 load and the stem keeps its old values."""
    (v1b_path, v1b), v1c = r50_exports['v1b'], r50_exports['v1c'][1]
    stem = ['bn1.bias', 'bn1.num_batches_tracked', 'bn1.running_mean',
            'bn1.running_var', 'bn1.weight', 'conv1.weight']
    v1c_model = stock_model(3)
    missing, unexpected, _ = backbone_mismatch(v1c_model, v1b)
    assert missing and all(k.startswith('stem.') for k in missing)
    assert unexpected == stem
    missing, unexpected, _ = backbone_mismatch(stock_model(2), v1c)
    assert missing == stem
    assert unexpected and all(k.startswith('stem.') for k in unexpected)

    backbone = copy.deepcopy(v1c_model.backbone)
    load_checkpoint(backbone, v1b_path, strict=False)  # what Pretrained does
    loaded = backbone.state_dict()
    assert torch.equal(loaded['layer4.2.conv3.weight'],
                       v1b['layer4.2.conv3.weight'])
    assert torch.equal(loaded['stem.0.weight'],
                       v1c_model.backbone.state_dict()['stem.0.weight'])


@pytest.mark.slow
@pytest.mark.parametrize('config,variant', [
    ('faster-rcnn_r50_fpn_xlearner_24k_voc0712.py', 'v1b'),
    ('deeplabv3_r50-d8_xlearner_33k_voc12aug-513x513.py', 'v1c'),
    # The same single V1b export as Faster R-CNN, at output stride 8 (the
    # paper's Table 4) and 16 (its Table 2 protocol).
    ('deeplabv3_r50b-d8_xlearner_33k_voc12aug-513x513.py', 'v1b'),
    ('deeplabv3_r50b-d16_xlearner_33k_voc12aug-513x513.py', 'v1b'),
])
def test_downstream_config_runner_builds(r50_exports, tmp_path, config,
                                         variant):
    out, weights = r50_exports[variant]
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'downstream', config))
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': out})
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = f'export_{variant}_{os.getpid()}'
    cfg.visualizer.name = cfg.experiment_name
    # The Runner makes the config's scope (mmdet/mmseg) current; it is put
    # back so that later tests build in xlearner_mm's.
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        runner = Runner.from_cfg(cfg)
    runner.model.init_weights()
    assert backbone_mismatch(runner.model, weights) == ([], [], [])
    if 'deeplabv3' in config:
        # DeepLabV3-D8 reads C5 at output stride 8, -D16 at 16, each with
        # DeepLabV3's ASPP rates for it
        backbone, aspp = runner.model.backbone, runner.model.decode_head
        stride16 = '-d16_' in config
        assert backbone.strides == ((1, 2, 2, 1) if stride16 else
                                    (1, 2, 1, 1))
        assert backbone.dilations == ((1, 1, 1, 2) if stride16 else
                                      (1, 1, 2, 4))
        assert [m.conv.dilation[0] for m in list(aspp.aspp_modules)[1:]] == (
            [6, 12, 18] if stride16 else [12, 24, 36])
        backbone.eval()  # SyncBN in eval mode runs on one process
        with torch.no_grad():
            c5 = backbone(torch.zeros(1, 3, 64, 64))[-1]
        assert c5.shape[-1] == (4 if stride16 else 8)
