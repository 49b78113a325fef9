"""PretrainedExpandedBackbone: a whole expanded model (streams +
reconciliation) as the backbone of stock mmdet / mmseg configs and of the
linear probe. The expanded model is the demo XLearner (three ResNet-18
streams of width 16: levels of 16, 32, 64 and 128 channels), saved as a
training checkpoint and exported whole."""
import os.path as osp

import pytest
from _tools import isolate_run
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from xlearner_mm.apis import export_backbone
from xlearner_mm.evaluation import run_linear_probe
from xlearner_mm.models.pruning import MagnitudePruner
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

register_all_modules()

DEMO_WIDTHS = (16, 32, 64, 128)
FASTER_RCNN = 'configs/demo/faster-rcnn_r50_fpn_export_demo.py'
DEEPLABV3 = 'configs/demo/deeplabv3_r50b_export_demo.py'


@pytest.fixture(scope='module')
def expanded(tmp_path_factory):
    """(model, training checkpoint, whole export) of the demo XLearner."""
    root = tmp_path_factory.mktemp('expanded')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile('configs/demo/expansion_demo.py').model)
    model.init_weights()
    checkpoint = str(root / 'iter_1.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(task_layout=model.layout.to_dict())), checkpoint)
    export = str(root / 'expanded.pth')
    export_backbone(checkpoint, export)
    return model.eval(), checkpoint, export


def build(checkpoint, **kwargs):
    return MODELS.build(dict(
        type='xlearner_mm.PretrainedExpandedBackbone', checkpoint=checkpoint,
        **kwargs))


def test_outputs_are_the_task_features(expanded):
    model, checkpoint, export = expanded
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = {t: model.extract_task_feat(x, t) for t in model.tasks}
        for path in (checkpoint, export):  # a training checkpoint or export
            det = build(path, task='det').eval()
            assert det.out_channels == DEMO_WIDTHS
            for got, w in zip(det(x), want['det']):
                torch.testing.assert_close(got, w)
        concat = build(export, combine='concat', out_indices=(1, 3)).eval()
        assert concat.out_channels == (96, 384)
        for got, i in zip(concat(x), (1, 3)):
            torch.testing.assert_close(
                got, torch.cat([want[t][i] for t in model.tasks], dim=1))
        mean = build(export, combine='mean').eval()
        assert mean.out_channels == DEMO_WIDTHS
        torch.testing.assert_close(
            mean(x)[3], sum(want[t][3] for t in model.tasks) / 3)


def test_what_no_output_reads_is_frozen(expanded):
    _, _, export = expanded
    det = build(export, task='det')
    trained = {n.split('.')[1] for n, p in det.neck.named_parameters()
               if p.requires_grad}
    assert trained == {'det'}  # reconcilers.<into task>.<from task>.*
    assert all(p.requires_grad for p in det.backbone.parameters())
    every = build(export, combine='sum')
    assert all(p.requires_grad for p in every.parameters())


def test_hard_sharing_checkpoint_trains_its_shared_stream(tmp_path):
    """A Hard-sharing training checkpoint: one stream that every task's
    output reads, so it is never frozen."""
    torch.manual_seed(0)
    model = MODELS.build(
        Config.fromfile('configs/demo/hard_sharing_demo.py').model)
    checkpoint = str(tmp_path / 'hard_sharing.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(task_layout=model.layout.to_dict())), checkpoint)
    det = build(checkpoint, task='det').eval()
    assert list(det.backbone.streams) == ['shared'] and det.neck is None
    assert all(p.requires_grad for p in det.parameters())
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for got, want in zip(det(x), model.extract_task_feat(x, 'det')):
            torch.testing.assert_close(got, want)


def test_errors_name_the_config_keys(expanded, tmp_path):
    _, checkpoint, export = expanded
    with pytest.raises(ValueError, match='exactly one of task'):
        build(export)
    with pytest.raises(ValueError, match='exactly one of task'):
        build(export, task='det', combine='concat')
    with pytest.raises(ValueError, match=r"task='ocr' is not among.*'seg'"):
        build(export, task='ocr')
    with pytest.raises(ValueError, match='combine must be one of'):
        build(export, combine='max')
    plain = str(tmp_path / 'det.pth')
    export_backbone(checkpoint, plain, task='det')
    with pytest.raises(ValueError, match='plain backbone export.*Pretrained'):
        build(plain, task='det')
    with pytest.raises(FileNotFoundError, match='model.backbone.checkpoint'):
        build(str(tmp_path / 'missing.pth'), task='det')


class _FirstLoss(Hook):
    """Keeps the first iteration's outputs."""

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.outputs = outputs


def _train_one_iteration(cfg, work_dir, prefix):
    isolate_run(cfg, work_dir, prefix)
    hook = _FirstLoss()
    # The Runner builds in the config's scope (mmdet/mmseg); xlearner_mm's is
    # put back for the later tests.
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        runner = Runner.from_cfg(cfg)
        runner.register_hook(hook)
        runner.train()
    assert torch.isfinite(hook.outputs['loss'])
    return runner.model


def _assert_frozen_kept_the_export(backbone, export):
    """The reconciliation layers into the other tasks are frozen, so after
    the stock model's init_weights and one iteration they still hold the
    exported weights (init_weights did not re-initialise the backbone)."""
    saved = torch.load(export, weights_only=True)['state_dict']
    frozen = [(n, p) for n, p in backbone.named_parameters()
              if not p.requires_grad]
    assert frozen
    for name, param in frozen:
        assert torch.equal(param.detach(), saved[name]), name


@pytest.mark.slow
def test_stock_faster_rcnn_trains_on_it(demo_data, expanded, tmp_path):
    """mmdet's stock Faster R-CNN R50-FPN VOC config (through the demo
    config, which swaps only its data and schedule) with only the backbone
    and the FPN's in_channels replaced."""
    _, _, export = expanded
    cfg = Config.fromfile(FASTER_RCNN)
    cfg.custom_imports = dict(imports=['xlearner_mm'])
    cfg.model.backbone = dict(
        type='xlearner_mm.PretrainedExpandedBackbone', checkpoint=export,
        task='det', stream_cfg=dict(frozen_stages=1), norm_eval=True)
    cfg.model.neck.in_channels = list(DEMO_WIDTHS)
    model = _train_one_iteration(cfg, tmp_path, 'faster_rcnn_expanded')
    _assert_frozen_kept_the_export(model.backbone, export)
    # frozen_stages=1 of every stream: the stem and layer1 do not train.
    assert not model.backbone.backbone.streams['cls'].layer1[0].conv1.weight \
        .requires_grad


@pytest.mark.slow
def test_stock_deeplabv3_trains_on_it(demo_data, expanded, tmp_path):
    """mmseg's stock DeepLabV3 R50b-D8 config (through the demo config) on
    F^seg, the streams dilated to output stride 8 like the stock D8
    backbone (the reconciliation's level steps then run at stride 1)."""
    _, _, export = expanded
    cfg = Config.fromfile(DEEPLABV3)
    cfg.custom_imports = dict(imports=['xlearner_mm'])
    cfg.model.backbone = dict(
        type='xlearner_mm.PretrainedExpandedBackbone', checkpoint=export,
        task='seg', stream_cfg=dict(strides=(1, 2, 1, 1),
                                    dilations=(1, 1, 2, 4)))
    cfg.model.decode_head.in_channels = DEMO_WIDTHS[3]
    cfg.model.auxiliary_head.in_channels = DEMO_WIDTHS[2]
    model = _train_one_iteration(cfg, tmp_path, 'deeplabv3_expanded')
    _assert_frozen_kept_the_export(model.backbone, export)
    model.eval()
    with torch.no_grad():
        levels = model.backbone(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in levels] == [16, 8, 8, 8]  # strides 4, 8


def test_linear_probe_of_the_expanded_model(demo_data, expanded, tmp_path):
    """configs/linear_probe/avg_cls_10datasets_expanded.py's backbone, which
    takes the probe's checkpoint, on one demo source."""
    _, _, export = expanded
    cfg = Config.fromfile(
        'configs/linear_probe/avg_cls_10datasets_expanded.py')
    demo = Config.fromfile('configs/linear_probe/demo.py')
    cfg.pipeline = demo.pipeline
    cfg.dataloader.update(batch_size=16, num_workers=0)
    cfg.datasets = dict(folder_cls=demo.datasets.folder_cls)
    cfg.probe.num_lambdas = 2
    result = run_linear_probe(cfg, export)['datasets']['folder_cls']
    assert result['feature_dim'] == DEMO_WIDTHS[3]
    assert result['num_test'] == 8 and 0 <= result['top1'] <= 100
    assert osp.isfile(export)


def _saved_expansion(model, path) -> str:
    """``model`` saved as a training run saves it, with its layout."""
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(task_layout=model.layout.to_dict())), path)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['pruned', 'xlearner_r'])
def test_pruned_and_xlearner_r_models_train_in_stock_configs(
        demo_data, tmp_path, kind):
    """X-Learner_p's pruned expanded model (its training checkpoint) and
    X-Learner_r's expanded half-width model as the backbone of the stock
    Faster R-CNN and DeepLabV3 configs, one iteration each, with only the
    backbone and the in_channels of what reads it replaced."""
    torch.manual_seed(0)
    if kind == 'pruned':
        model = MODELS.build(
            Config.fromfile('configs/demo/expansion_demo.py').model)
        model.init_weights()
        MagnitudePruner(keep_params='one_stream').prune(model)
    else:  # random weights: the demo chain trains the real ones
        model = MODELS.build(
            Config.fromfile('configs/demo/xlearner_r_expansion_demo.py').model)
    checkpoint = _saved_expansion(model, tmp_path / f'{kind}.pth')
    widths = model.backbone.out_channels['det']

    cfg = Config.fromfile(FASTER_RCNN)
    cfg.custom_imports = dict(imports=['xlearner_mm'])
    cfg.model.backbone = dict(
        type='xlearner_mm.PretrainedExpandedBackbone', checkpoint=checkpoint,
        task='det')
    cfg.model.neck.in_channels = list(widths)
    _train_one_iteration(cfg, tmp_path, f'faster_rcnn_{kind}')

    task = 'seg' if 'seg' in model.layout.tasks else 'det'
    cfg = Config.fromfile(DEEPLABV3)
    cfg.custom_imports = dict(imports=['xlearner_mm'])
    cfg.model.backbone = dict(
        type='xlearner_mm.PretrainedExpandedBackbone', checkpoint=checkpoint,
        task=task)
    cfg.model.decode_head.in_channels = model.backbone.out_channels[task][3]
    cfg.model.auxiliary_head.in_channels = model.backbone.out_channels[task][2]
    _train_one_iteration(cfg, tmp_path, f'deeplabv3_{kind}')
    # What the stock configs train from holds the checkpoint's weights, the
    # pruned zeros included.
    loaded = build(checkpoint, task='det').backbone
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    if kind == 'pruned':
        assert sum(int((w == 0).sum()) for w in loaded.parameters()) > 0
