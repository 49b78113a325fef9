"""ExpandedBackbone, ReconciliationNeck, the per-source heads and XLearner on
tiny models with the real mmpretrain / mmdet / mmseg heads."""
import copy
import itertools

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData, PixelData
from mmpretrain.structures import DataSample as ClsDataSample
from mmseg.structures import SegDataSample

from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

register_all_modules()

TINY_RESNET = dict(
    type='mmdet.ResNet', depth=18, base_channels=8, num_stages=4,
    out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), style='pytorch')


def build_expansion(tasks=('cls', 'det', 'seg'), out_indices=(0, 1, 2, 3),
                    groups=4, **neck_options):
    backbone = MODELS.build(dict(
        type='ExpandedBackbone', tasks=tasks,
        backbone=dict(TINY_RESNET, out_indices=out_indices)))
    neck = MODELS.build(dict(
        type='ReconciliationNeck', in_channels=backbone.out_channels,
        strides=backbone.out_strides, groups=groups, **neck_options))
    neck.init_weights()
    return backbone, neck


@pytest.mark.parametrize('tasks,out_indices', [
    (('cls', 'det', 'seg'), (0, 1, 2, 3)),
    (('cls', 'det', 'seg'), (0, 1, 2)),
    (('cls', 'det'), (1, 2, 3)),
    (('a', 'b', 'c', 'd'), (3, )),
])
def test_number_of_reconciliation_layers(tasks, out_indices):
    backbone, neck = build_expansion(tasks, out_indices)
    T, D = len(tasks), len(out_indices)
    assert neck.num_layers == T * (T - 1) * D * (D + 1) // 2
    # Each layer gamma_{j->i} is one gamma_b and i - j gamma_a.
    for t, k in itertools.permutations(tasks, 2):
        for i in range(D):
            for j in range(i + 1):
                layer = neck.reconcilers[t][k][f'{j}_{i}']
                assert len(layer.gamma_a) == i - j


@pytest.mark.parametrize('direction', ['bottom_up', 'top_down'])
@pytest.mark.parametrize('out_levels', [
    None, dict(cls=(3, )), dict(cls=(0, 2), seg=(1, ))])
def test_number_of_layers_with_out_levels(direction, out_levels):
    """(T-1) sum_t sum_{i in L_t} i bottom-up, (D-i+1) top-down (1-based
    i); T(T-1)D(D+1)/2 either way when every level is read."""
    tasks, D = ('cls', 'det', 'seg'), 4
    _, neck = build_expansion(tasks, direction=direction,
                              out_levels=out_levels)
    read = {t: (out_levels or {}).get(t, range(1, D + 1)) for t in tasks}
    if out_levels:  # 0-based in the config
        read.update({t: [i + 1 for i in levels]
                     for t, levels in out_levels.items()})
    per_level = (lambda i: i) if direction == 'bottom_up' else (
        lambda i: D - i + 1)
    assert neck.num_layers == (len(tasks) - 1) * sum(
        per_level(i) for t in tasks for i in read[t])
    if out_levels is None:
        assert neck.num_layers == 3 * 2 * D * (D + 1) // 2


@pytest.mark.parametrize('direction', ['bottom_up', 'top_down'])
def test_layers_connect_levels_in_their_direction(direction):
    """X-Learner: level i of task t reads levels j <= i of the other tasks
    through i - j gamma_a; X-Learner_t: levels j >= i, through j - i
    gamma_c (up-sampling + conv). F_i^t depends on those levels only."""
    torch.manual_seed(0)
    backbone, neck = build_expansion(direction=direction)
    top_down = direction == 'top_down'
    D = 4
    reads = (lambda j, i: j >= i) if top_down else (lambda j, i: j <= i)
    for t, k in itertools.permutations(backbone.tasks, 2):
        pairs = {tuple(map(int, key.split('_')))
                 for key in neck.reconcilers[t][k]}
        assert pairs == {(j, i) for i in range(D) for j in range(D)
                         if reads(j, i)}
        for j, i in pairs:
            layer = neck.reconcilers[t][k][f'{j}_{i}']
            assert layer.step_name == ('gamma_c' if top_down else 'gamma_a')
            assert len(layer.steps) == abs(i - j)
            if top_down and j > i:
                assert isinstance(layer.steps[0][0], torch.nn.Upsample)
    # Eval mode: BN with fixed statistics, so a change of an input shows.
    neck.eval()
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, 32, 32))
        plain = neck(feats, 'cls')
        for k, j in itertools.product(('det', 'seg'), range(D)):
            changed = dict(feats)
            changed[k] = tuple(f + torch.randn_like(f) if m == j else f
                               for m, f in enumerate(feats[k]))
            fused = neck(changed, 'cls')
            for i in range(D):
                assert torch.equal(fused[i], plain[i]) != reads(j, i), (
                    k, j, i)


@pytest.mark.parametrize('update', [True, False])
def test_bn_statistics_of_streams_run_for_other_tasks(update):
    """update_bn_on_other_tasks: whether a stream run (no_grad) on another
    task's batch adds that batch to its BN running statistics. Either way it
    normalises with the batch's statistics, so the features are the same."""
    torch.manual_seed(0)
    backbone = MODELS.build(dict(
        type='ExpandedBackbone', tasks=('cls', 'det'),
        backbone=dict(TINY_RESNET, norm_eval=False),  # BN in train mode
        update_bn_on_other_tasks=update)).train()
    reference = copy.deepcopy(backbone)
    reference.update_bn_on_other_tasks = not update
    before = copy.deepcopy(backbone.state_dict())
    x = torch.randn(2, 3, 32, 32)
    feats = backbone(x, grad_tasks=('det', ))
    for task in ('cls', 'det'):
        for got, want in zip(feats[task], reference(x, grad_tasks=('det',
                                                                   ))[task]):
            torch.testing.assert_close(got, want)
    after = backbone.state_dict()
    for task, updated in (('det', True), ('cls', update)):
        keys = [k for k in before if k.startswith(f'streams.{task}.')
                and ('running_' in k or 'num_batches' in k)]
        assert keys
        assert all(torch.equal(after[k], before[k]) != updated
                   for k in keys if 'running_' in k), task


def test_levels_are_probed_from_the_backbone():
    backbone, _ = build_expansion()
    assert backbone.out_channels['det'] == (8, 16, 32, 64)
    assert backbone.out_strides['seg'] == (4, 8, 16, 32)


def test_fused_shapes_equal_stream_shapes():
    backbone, neck = build_expansion()
    x = torch.randn(2, 3, 64, 48)
    feats = backbone(x)
    for task in backbone.tasks:
        fused = neck(feats, task)
        assert [f.shape for f in fused] == [e.shape for e in feats[task]]


def test_zero_initialised_last_norm_makes_the_layers_start_at_zero():
    """zero_init_last_norm: at tau F^t = E^t (no shock), and a training step
    moves the scales off 0 so the layers grow in; without it each layer
    adds a unit-scale term."""
    backbone, neck = build_expansion(zero_init_last_norm=True)
    _, plain = build_expansion()
    x = torch.randn(2, 3, 32, 32)
    feats = backbone(x)
    for task in backbone.tasks:
        for fused, own in zip(neck(feats, task), feats[task]):
            assert torch.equal(fused, own)
        assert not all(
            torch.equal(f, e) for f, e in zip(plain(feats, task), feats[task]))
    assert all(float(layer.gamma_b.norm.weight.abs().sum()) == 0
               for layer in neck.links().values())
    assert all(bool((layer.gamma_b.norm.weight == 1).all())
               for layer in plain.links().values())
    sum(f.square().mean() for f in neck(feats, 'cls')).backward()
    grads = [layer.gamma_b.norm.weight.grad
             for link, layer in neck.links().items() if link.target == 'cls']
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_task_loss_gives_no_gradient_to_other_streams():
    backbone, neck = build_expansion()
    x = torch.randn(2, 3, 32, 32)
    for target in backbone.tasks:
        backbone.zero_grad(set_to_none=True)
        neck.zero_grad(set_to_none=True)
        # Even with every stream recording a graph, the detached inputs stop
        # task t's loss at the reconciliation layers.
        feats = backbone(x)
        loss = sum(f.square().mean() for f in neck(feats, target))
        loss.backward()
        for task, stream in backbone.streams.items():
            grads = [p.grad for p in stream.parameters()]
            if task == target:
                assert all(g is not None for g in grads)
                assert any(g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None or g.abs().sum() == 0 for g in grads), task
        for t, into_t in neck.reconcilers.items():
            grads = [p.grad for p in into_t.parameters()]
            if t == target:
                assert any(g is not None and g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None for g in grads)


def test_other_streams_run_without_graph():
    backbone, _ = build_expansion()
    feats = backbone(torch.randn(1, 3, 32, 32), grad_tasks=('det', ))
    assert all(f.requires_grad for f in feats['det'])
    assert not any(f.requires_grad for f in feats['cls'] + feats['seg'])


def test_zeroed_reconciliation_is_the_plain_stream():
    backbone, neck = build_expansion()
    for name, p in neck.named_parameters():
        if name.endswith('conv.weight'):
            torch.nn.init.zeros_(p)
    x = torch.randn(2, 3, 32, 32)
    feats = backbone(x)
    for task in backbone.tasks:
        for fused, own in zip(neck(feats, task), feats[task]):
            torch.testing.assert_close(fused, own)
    # and with the Glorot init they are not
    _, fresh = build_expansion()
    fused = fresh(feats, 'cls')
    assert not torch.allclose(fused[-1], feats['cls'][-1])


def test_reconciliation_is_glorot_initialised():
    _, neck = build_expansion(groups=1)
    w = neck.reconcilers['cls']['det']['0_0'].gamma_b.conv.weight
    fan_in, fan_out = w.shape[1] * w[0, 0].numel(), w.shape[0] * w[0, 0].numel()
    bound = (6 / (fan_in + fan_out))**0.5
    assert w.abs().max() <= bound + 1e-6
    assert w.abs().max() > 0.5 * bound


def test_strides_that_cannot_be_reached_are_rejected():
    with pytest.raises(ValueError, match='cannot reach output stride'):
        MODELS.build(dict(
            type='ReconciliationNeck',
            in_channels=dict(a=(8, 16), b=(8, 16)),
            strides=dict(a=(4, 8), b=(8, 16))))
    with pytest.raises(ValueError, match='same number of levels'):
        MODELS.build(dict(
            type='ReconciliationNeck',
            in_channels=dict(a=(8, 16), b=(8, )),
            strides=dict(a=(4, 8), b=(4, ))))


# ----------------------------------------------------------------------------
# Per-source heads inside the stock models, and XLearner on the demo recipe.

DEMO_CONFIG = 'configs/demo/expansion_demo.py'
HARD_SHARING_DEMO = 'configs/demo/hard_sharing_demo.py'


@pytest.fixture(scope='module')
def demo_model_cfg():
    return Config.fromfile(DEMO_CONFIG).model


def cls_batch(sources, n=4, size=32):
    samples = []
    for i in range(n):
        source = sources[i % len(sources)]
        samples.append(ClsDataSample(metainfo=dict(task='cls', source=source))
                       .set_gt_label(i % 2))
    return dict(inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
                        for _ in range(n)], data_samples=samples)


def det_batch(sources, n=2, size=64):
    samples = []
    for i in range(n):
        s = DetDataSample(metainfo=dict(
            task='det', source=sources[i % len(sources)], img_shape=(size, size),
            ori_shape=(size, size), pad_shape=(size, size),
            scale_factor=(1.0, 1.0), batch_input_shape=(size, size)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[8., 8., 40., 40.]]), labels=torch.tensor([1]))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
                        for _ in range(n)], data_samples=samples)


def seg_batch(n=2, size=64):
    samples = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(
            task='seg', source='ade', img_shape=(size, size),
            ori_shape=(size, size), pad_shape=(size, size)))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 3, (1, size, size), dtype=torch.long))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
                        for _ in range(n)], data_samples=samples)


def demo_batch():
    return dict(cls=cls_batch(['folder_cls', 'annfile_cls']),
                det=det_batch(['coco_a', 'coco_b']), seg=seg_batch())


def test_xlearner_builds_stock_task_models(demo_model_cfg):
    model = MODELS.build(demo_model_cfg)
    assert type(model.task_models['cls']).__name__ == 'ImageClassifier'
    assert type(model.task_models['det']).__name__ == 'FasterRCNN'
    assert type(model.task_models['seg']).__name__ == 'EncoderDecoder'
    assert model.layout.sources == dict(
        cls=('folder_cls', 'annfile_cls'), det=('coco_a', 'coco_b'),
        seg=('ade', ))
    assert model.layout.num_sources == 5
    # The streams are registered once, under the XLearner.
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith('task_models') and 'streams' in n for n in names)
    assert len(names) == len(set(names))
    # Per-source heads have their own label spaces.
    roi = model.task_models['det'].roi_head
    assert roi.heads['coco_a'].bbox_head.num_classes != \
        roi.heads['coco_b'].bbox_head.num_classes


def test_xlearner_loss_names_every_task_and_source(demo_model_cfg):
    model = MODELS.build(demo_model_cfg)
    model.init_weights()
    data = model.data_preprocessor(demo_batch(), True)
    losses = model(**data, mode='loss')
    for key in ('cls.folder_cls.loss', 'cls.annfile_cls.loss',
                'det.loss_rpn_cls', 'det.coco_a.loss_cls', 'det.coco_b.loss_bbox',
                'seg.decode.ade.loss_ce'):
        assert key in losses, sorted(losses)
    loss, log_vars = model.parse_losses(losses)
    for key in ('loss', 'cls.task_loss', 'det.task_loss', 'seg.task_loss'):
        assert key in log_vars
    loss.backward()
    # every stream and every reconciliation layer received a gradient
    for task, stream in model.backbone.streams.items():
        assert stream.layer4[0].conv1.weight.grad is not None, task
    # Layers into the levels a task's heads read get a gradient: FPN reads
    # all four detection levels, the classifier and FCN head the last one.
    for t, into_t in model.neck.reconcilers.items():
        for k, layers in into_t.items():
            for name, layer in layers.items():
                read = t == 'det' or name.endswith('_3')
                has_grad = [p.grad is not None for p in layer.parameters()]
                assert all(has_grad) if read else not any(has_grad), (t, k, name)


def test_eq1_averages_over_sources(demo_model_cfg):
    model = MODELS.build(demo_model_cfg)
    one = torch.tensor(1.)
    losses = {
        'cls.folder_cls.loss': one * 2, 'cls.annfile_cls.loss': one * 4,
        'cls.folder_cls.accuracy': one * 100,
        'det.loss_rpn_cls': [one, one],  # shared by coco_a and coco_b
        'det.coco_a.loss_cls': one * 3, 'det.coco_b.loss_cls': one * 5,
        'seg.decode.ade.loss_ce': one * 7, 'seg.decode.ade.acc_seg': one * 50,
    }
    model.reconcile = True
    loss, log_vars = model.parse_losses(losses)
    # sum over the 5 sources of their losses / 5; the RPN loss counts for
    # both detection sources.
    assert loss.item() == pytest.approx((2 + 4 + 2 * 2 + 3 + 5 + 7) / 5)
    assert log_vars['cls.task_loss'].item() == pytest.approx(3)
    assert log_vars['det.task_loss'].item() == pytest.approx(2 + 4)
    assert log_vars['cls.folder_cls.accuracy'].item() == 100
    # Before tau each sub-backbone is trained on its own task loss.
    model.reconcile = False
    loss, _ = model.parse_losses(losses)
    assert loss.item() == pytest.approx(3 + 6 + 7)


def test_without_reconciliation_streams_are_independent(demo_model_cfg):
    model = MODELS.build(demo_model_cfg)
    model.reconcile = False
    data = model.data_preprocessor(dict(cls=cls_batch(['folder_cls'])), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    loss.backward()
    assert model.backbone.streams['cls'].conv1.weight.grad is not None
    for task in ('det', 'seg'):
        assert model.backbone.streams[task].conv1.weight.grad is None
    assert all(p.grad is None for p in model.neck.parameters())


def test_hard_sharing_trains_one_stream_with_every_task_loss():
    model = MODELS.build(Config.fromfile(HARD_SHARING_DEMO).model)
    assert list(model.backbone.streams) == ['shared'] and model.neck is None
    assert model.layout.streams == ('shared', )
    assert model.layout.stream_prefix('seg') == 'backbone.streams.shared.'
    # The stream serves every task, so no task's lr key may claim it.
    assert not [name for names in model.task_parameter_names().values()
                for name in names if name.startswith('backbone.')]
    stream = model.backbone.streams['shared']
    for task, batch in demo_batch().items():
        model.zero_grad(set_to_none=True)
        data = model.data_preprocessor({task: batch}, True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        loss.backward()
        assert sum(p.grad.abs().sum() for p in stream.parameters()
                   if p.grad is not None) > 0, task


def test_hard_sharing_refuses_a_neck(demo_model_cfg):
    cfg = copy.deepcopy(demo_model_cfg)
    cfg.backbone.shared = True
    with pytest.raises(ValueError, match='set model.neck=None'):
        MODELS.build(cfg)


def test_predict_routes_each_sample_to_its_source(demo_model_cfg):
    model = MODELS.build(demo_model_cfg).eval()
    with torch.no_grad():
        out = model.val_step(dict(cls=cls_batch(['annfile_cls', 'folder_cls'])))
        assert [o.metainfo['source'] for o in out] == [
            'annfile_cls', 'folder_cls', 'annfile_cls', 'folder_cls']
        num_classes = {'annfile_cls': model.task_models['cls'].head.heads[
            'annfile_cls'].num_classes, 'folder_cls': model.task_models[
                'cls'].head.heads['folder_cls'].num_classes}
        for o in out:
            assert o.pred_score.numel() == num_classes[o.metainfo['source']]
        det = model.val_step(dict(det=det_batch(['coco_b', 'coco_a'], n=3)))
        assert [o.metainfo['source'] for o in det] == ['coco_b', 'coco_a', 'coco_b']
        assert all('pred_instances' in o for o in det)
        seg = model.val_step(dict(seg=seg_batch()))
        assert seg[0].pred_sem_seg.data.shape[-2:] == (64, 64)


def test_untagged_sample_with_several_heads_is_an_error(demo_model_cfg):
    model = MODELS.build(demo_model_cfg)
    batch = cls_batch(['folder_cls'])
    for s in batch['data_samples']:
        del s.source
    data = model.data_preprocessor(dict(cls=batch), True)
    with pytest.raises(KeyError, match='no "source"'):
        model(**data, mode='loss')


def test_decode_head_pads_classes_of_mixed_sources():
    head = MODELS.build(dict(
        type='MultiSourceDecodeHead',
        shared=dict(type='mmseg.FCNHead', in_channels=8, channels=4,
                    num_convs=1, concat_input=False, in_index=0),
        heads=dict(a=dict(num_classes=3), b=dict(num_classes=5))))
    assert head.num_classes == 5
    metas = [dict(source='a', img_shape=(8, 8)), dict(source='b', img_shape=(8, 8))]
    head.eval()
    logits = head.predict((torch.randn(2, 8, 8, 8), ), metas,
                          dict(mode='whole'))
    assert logits.shape == (2, 5, 8, 8)
    # source a has no classes 3 and 4: argmax never picks them
    assert (logits[0, 3:] < -1e3).all()
    assert (logits[0].argmax(0) < 3).all()


def test_mismatched_task_lists_are_rejected(demo_model_cfg):
    cfg = copy.deepcopy(demo_model_cfg)
    cfg.backbone.tasks = ['cls', 'det']
    with pytest.raises(ValueError, match='tasks'):
        MODELS.build(cfg)


def test_a_head_whose_source_is_absent_gets_a_zero_gradient():
    """A rank's batch may miss a source (the sampler composes the global
    batch): that source's head must still take part in backward, with a zero
    gradient, or DDP (find_unused_parameters=False) fails next iteration."""
    head = MODELS.build(dict(
        type='MultiSourceClsHead',
        shared=dict(type='mmpretrain.LinearClsHead', in_channels=8,
                    loss=dict(type='mmpretrain.CrossEntropyLoss')),
        heads=dict(a=dict(num_classes=3), b=dict(num_classes=5))))
    samples = [ClsDataSample(metainfo=dict(source='a')).set_gt_label(1)
               for _ in range(2)]
    losses = head.loss((torch.randn(2, 8), ), samples)
    assert set(losses) == {'a.loss'}
    plain = head.heads['a'].loss((torch.randn(2, 8), ), samples)['loss']
    assert losses['a.loss'].shape == plain.shape
    losses['a.loss'].backward()
    for p in head.heads['b'].parameters():
        assert p.grad is not None and not p.grad.any()
    assert head.heads['a'].fc.weight.grad.any()
