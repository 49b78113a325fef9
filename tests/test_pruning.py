"""Tests of X-Learner_p's magnitude pruning: MagnitudePruner and its helpers,
MagnitudePruningHook in a real Runner, and tools/prune.py.

The unit tests prune the demo Expansion model (configs/demo/expansion_demo.py:
three ResNet-18 streams at 1/4 width and their reconciliation layers, 2.6M
prunable weights), built once per module and reset before every test.
"""
import copy
import json
import os.path as osp

import pytest
from _tools import REPO_ROOT, isolate_run, load_tool
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch import nn

import xlearner_mm  # noqa: F401  (checkpoint allow-list for resuming)
from xlearner_mm.engine.hooks import MagnitudePruningHook
from xlearner_mm.models.pruning import (MagnitudePruner, apply_masks,
                                        mask_gradients, prunable_weights,
                                        sparsity_report, stream_weight_count)
from xlearner_mm.models.pruning.magnitude_pruning import PRUNABLE_LAYERS
from xlearner_mm.utils.compat import load_checkpoint
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

DEMO_CONFIG = 'configs/demo/expansion_demo.py'
PRUNE_DEMO_CONFIG = 'configs/demo/prune_demo.py'


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """One torch thread: on a busy 2-core machine two threads per process
    oversubscribe the cores (a demo training iteration took 13 s instead of
    0.4 s)."""
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


@pytest.fixture(scope='module')
def built_model():
    """The demo Expansion model and a copy of its initial weights."""
    register_all_modules(init_default_scope=False)
    model = MODELS.build(Config.fromfile(
        osp.join(REPO_ROOT, DEMO_CONFIG)).model)
    return model, copy.deepcopy(model.state_dict())


@pytest.fixture
def model(built_model):
    """The demo model with its initial (unpruned) weights."""
    model, state = built_model
    model.load_state_dict(state)
    return model


def conv_linear_weight_count(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)))


def magnitudes(weights: dict) -> dict:
    return {name: w.detach().abs().clone() for name, w in weights.items()}


def assert_largest_kept(before: dict, masks: dict, per_layer: bool) -> None:
    """Every kept weight is at least as large as every pruned one (in its
    layer, or over all layers)."""
    def check(kept, pruned, where):
        if kept.numel() and pruned.numel():
            assert kept.min() >= pruned.max(), where

    if per_layer:
        for name, mask in masks.items():
            check(before[name][mask], before[name][~mask], name)
    else:
        check(torch.cat([before[n][m] for n, m in masks.items()]),
              torch.cat([before[n][~m] for n, m in masks.items()]), 'global')


# ---------------------------------------------------------------- targets


def test_global_pruning_reaches_target(model):
    sparsity = 0.8
    weights = prunable_weights(model)
    before = magnitudes(weights)
    total = sum(w.numel() for w in weights.values())
    masks = MagnitudePruner(sparsity=sparsity).prune(model)

    report = sparsity_report(model)
    assert report['prunable'] == total
    assert report['kept'] == round((1 - sparsity) * total)
    assert report['sparsity'] == pytest.approx(sparsity, abs=1 / total)
    # The report counts zeros in the weights, and they are the masks' zeros.
    for name, w in weights.items():
        assert torch.equal(w != 0, masks[name]), name
        assert report['layers'][name]['kept'] == int(masks[name].sum())
    assert_largest_kept(before, masks, per_layer=False)
    # One threshold: layers end up with different sparsities.
    layer_sparsity = [s['sparsity'] for s in report['layers'].values()]
    assert max(layer_sparsity) - min(layer_sparsity) > 0.1
    # Groups: one per stream, one per task's reconciliation layers.
    assert set(report['groups']) == {
        f'{part}.{task}' for part in ('backbone.streams', 'neck.reconcilers')
        for task in ('cls', 'det', 'seg')}
    assert sum(g['kept'] for g in report['groups'].values()) == report['kept']


def test_layer_pruning_same_sparsity_in_every_layer(model):
    sparsity = 0.6
    weights = prunable_weights(model)
    before = magnitudes(weights)
    total = sum(w.numel() for w in weights.values())
    masks = MagnitudePruner(sparsity=sparsity, scope='layer').prune(model)

    report = sparsity_report(model)
    assert report['kept'] == round((1 - sparsity) * total)
    for name, w in weights.items():
        assert abs(report['layers'][name]['kept'] -
                   (1 - sparsity) * w.numel()) <= 1, name
    assert_largest_kept(before, masks, per_layer=True)


@pytest.mark.parametrize('scope', ['global', 'layer'])
def test_keep_one_stream(model, scope):
    """The expanded model keeps as many weights as one sub-backbone has."""
    one_stream = conv_linear_weight_count(model.backbone.streams['cls'])
    assert stream_weight_count(model) == one_stream
    MagnitudePruner(keep_params='one_stream', scope=scope).prune(model)
    report = sparsity_report(model)
    assert report['kept'] == one_stream
    # 3 streams and their reconciliation layers were prunable.
    assert report['prunable'] == (
        3 * one_stream + conv_linear_weight_count(model.neck))
    assert report['sparsity'] > 2 / 3


def test_only_conv_linear_weights_of_the_patterns_change(model):
    before = copy.deepcopy(model.state_dict())
    MagnitudePruner(sparsity=0.5, patterns=('backbone.streams.det.*', )).prune(
        model)
    pruned = set(prunable_weights(model, ('backbone.streams.det.*', )))
    assert pruned and all(n.endswith('.weight') for n in pruned)
    state = model.state_dict()
    zeros = sum(int((state[name] == 0).sum()) for name in pruned)
    assert zeros == sum(state[name].numel() for name in pruned) // 2
    for name, value in state.items():
        if name not in pruned:  # other streams, BN, biases, heads, buffers
            assert torch.equal(value, before[name]), name


def test_every_torch_conv_is_prunable():
    """PRUNABLE_LAYERS names torch's public conv classes; a conv class that
    a new torch adds must join them."""
    convs = {
        cls for cls in vars(nn).values() if isinstance(cls, type)
        and issubclass(cls, nn.modules.conv._ConvNd)
    }
    assert convs and all(issubclass(cls, PRUNABLE_LAYERS) for cls in convs), \
        [cls.__name__ for cls in convs if not issubclass(cls, PRUNABLE_LAYERS)]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(sparsity=1.0), ValueError, r'sparsity must be in \[0, 1\)'),
    (dict(sparsity=-0.1), ValueError, r'sparsity must be in \[0, 1\)'),
    (dict(), ValueError, 'exactly one of sparsity and keep_params'),
    (dict(sparsity=0.5, keep_params='one_stream'), ValueError,
     'exactly one of sparsity and keep_params'),
    (dict(keep_params='two_streams'), ValueError, 'keep_params must be'),
    (dict(sparsity=0.5, scope='channel'), ValueError, 'scope must be'),
    (dict(sparsity=0.5, patterns='backbone.*'), ValueError,
     'non-empty sequence'),
])
def test_bad_settings_fail_at_build(kwargs, error, message):
    with pytest.raises(error, match=message):
        MagnitudePruner(**kwargs)
    with pytest.raises(error, match=message):
        MagnitudePruningHook(**kwargs)


def test_bad_targets_fail_naming_the_model(model):
    with pytest.raises(ValueError, match=r"matches the prunable patterns "
                       r"\['head\.\*'\]"):
        MagnitudePruner(sparsity=0.5, patterns=('head.*', )).prune(model)
    with pytest.raises(ValueError, match='asks to keep'):
        MagnitudePruner(keep_params=10**9).prune(model)
    with pytest.raises(TypeError, match='backbone.streams'):
        MagnitudePruner(keep_params='one_stream', patterns=('*', )).prune(
            nn.Sequential(nn.Linear(4, 4)))


# ---------------------------------------------------------------- fine-tuning


def test_masks_keep_pruned_weights_zero_through_sgd():
    """SGD with momentum and weight decay: with the gradients masked, the
    pruned weights and their momentum stay exactly zero; without, one step
    moves them off zero and only re-applying the masks zeroes them again."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    assert list(prunable_weights(model, ('*', ))) == ['0.weight', '5.weight']
    masks = MagnitudePruner(sparsity=0.5, patterns=('*', )).prune(model)
    unmasked = copy.deepcopy(model)
    inputs = torch.randn(4, 3, 8, 8)

    def step(net, optimizer):
        optimizer.zero_grad()
        net(inputs).square().mean().backward()
        optimizer.step()

    def sgd(net):
        return torch.optim.SGD(
            net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    optimizer = sgd(unmasked)
    step(unmasked, optimizer)
    params = dict(unmasked.named_parameters())
    assert all(params[n][~m].abs().sum() > 0 for n, m in masks.items())
    apply_masks(unmasked, masks)
    assert all(params[n][~m].abs().sum() == 0 for n, m in masks.items())

    handles = mask_gradients(model, masks)
    optimizer = sgd(model)
    params = dict(model.named_parameters())
    kept_before = {n: params[n][m].clone() for n, m in masks.items()}
    for _ in range(3):
        step(model, optimizer)
        for name, mask in masks.items():
            assert params[name][~mask].abs().sum() == 0, name
            buf = optimizer.state[params[name]]['momentum_buffer']
            assert buf[~mask].abs().sum() == 0, name
    for name, mask in masks.items():  # the kept weights did train
        assert not torch.equal(params[name][mask], kept_before[name]), name
    for handle in handles:
        handle.remove()
    step(model, optimizer)
    assert all(params[n][~m].abs().sum() > 0 for n, m in masks.items())


# ---------------------------------------------------------------- tools/prune.py


def test_tools_prune_writes_a_permanent_checkpoint(model, tmp_path, capsys):
    source = tmp_path / 'expansion.pth'
    torch.save(dict(meta=dict(iter=120, epoch=0, seed=0),
                    state_dict=model.state_dict(),
                    optimizer=dict(state={}, param_groups=[])), source)
    out = tmp_path / 'out' / 'pruned.pth'
    prune_tool = load_tool('prune')
    pruning = prune_tool.main([DEMO_CONFIG, str(source), str(out),
                               '--keep-params', 'one_stream'])
    printed = capsys.readouterr().out
    assert 'backbone.streams.cls' in printed
    assert f'{pruning["sparsity"]:.4%}' in printed

    checkpoint = load_checkpoint(out)
    assert set(checkpoint) == {'meta', 'state_dict'}
    assert checkpoint['meta']['iter'] == 120
    meta = checkpoint['meta']['pruning']
    assert meta == pruning
    assert (meta['method'], meta['scope'], meta['keep_params']) == (
        'magnitude', 'global', 'one_stream')
    # Plain weights with their zeros: loads strictly into the config's model.
    assert checkpoint['state_dict'].keys() == model.state_dict().keys()
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    report = sparsity_report(model)
    assert report['kept'] == meta['kept'] == stream_weight_count(model)
    assert report['sparsity'] == pytest.approx(meta['sparsity'])
    assert report['layers'] == meta['layers']
    # The same as pruning in memory.
    model.load_state_dict(load_checkpoint(source)['state_dict'])
    MagnitudePruner(keep_params='one_stream').prune(model)
    for name, value in model.state_dict().items():
        assert torch.equal(value, checkpoint['state_dict'][name]), name

    prune_tool.main([DEMO_CONFIG, str(source), str(out), '--sparsity', '0.25',
                     '--scope', 'layer'])
    meta = load_checkpoint(out)['meta']['pruning']
    assert meta['scope'] == 'layer' and meta['target_sparsity'] == 0.25
    assert meta['sparsity'] == pytest.approx(0.25, abs=1e-6)
    with pytest.raises(ValueError, match=r'sparsity must be in \[0, 1\)'):
        prune_tool.main([DEMO_CONFIG, str(source), str(out), '--sparsity', '1'])


# ---------------------------------------------------------------- Runner


def prune_cfg(work_dir, load_from, max_iters=3) -> Config:
    """configs/demo/prune_demo.py for a short CPU run: classification and
    segmentation only (two streams, reconciliation between them), small
    batches, no workers, no validation, a checkpoint every 2 iterations."""
    cfg = Config.fromfile(PRUNE_DEMO_CONFIG)
    isolate_run(cfg, work_dir, 'prune')
    del cfg.model.task_models['det'], cfg.train_dataloader['det']
    for loader, batch_size in zip(cfg.train_dataloader.values(), (4, 2)):
        loader.batch_size = loader.sampler.batch_size = batch_size
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg = dict(type='MultiTaskIterBasedTrainLoop',
                         max_iters=max_iters)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 2
    cfg.randomness = dict(seed=0)
    cfg.load_from = str(load_from)
    return cfg


def log_text(runner) -> str:
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def pruning_hook(runner) -> MagnitudePruningHook:
    hook, = [h for h in runner.hooks if isinstance(h, MagnitudePruningHook)]
    return hook


@pytest.fixture
def no_config_formatting(monkeypatch):
    """mmengine formats the config text with yapf six times per run (log,
    dump, visualizer, every checkpoint's meta): two thirds of this short run,
    and not what is tested here."""
    monkeypatch.setattr('mmengine.config.config.FormatCode',
                        lambda text, **kwargs: (text, False))


@pytest.mark.slow
def test_runner_prunes_fine_tunes_and_resumes(demo_data, tmp_path,
                                              no_config_formatting):
    """A: prune a (freshly initialised) Expansion checkpoint and fine-tune 3
    iterations. B: A's iteration-2 checkpoint resumed to 3: same masks, same
    weights as A. Resuming a checkpoint without masks, or pruning nothing
    loaded, fails before any iteration."""
    register_all_modules(init_default_scope=False)
    cfg = prune_cfg(tmp_path / 'a', tmp_path / 'expansion.pth')
    expansion = MODELS.build(cfg.model)
    expansion.init_weights()
    torch.save(dict(meta=dict(iter=120, epoch=0),
                    state_dict=expansion.state_dict()),
               tmp_path / 'expansion.pth')

    runner_a = Runner.from_cfg(cfg)
    runner_a.train()
    model_a = runner_a.model
    masks = pruning_hook(runner_a).masks
    one_stream = stream_weight_count(model_a)
    assert sum(int(m.sum()) for m in masks.values()) == one_stream
    params = dict(model_a.named_parameters())
    for name, mask in masks.items():  # pruned weights stayed zero, kept trained
        assert params[name][~mask].abs().sum() == 0, name
    trained = [n for n, m in masks.items() if not torch.equal(
        params[n][m], expansion.state_dict()[n][m])]
    assert any(n.startswith('backbone.streams.seg') for n in trained)
    assert 'MagnitudePruningHook pruned the loaded model' in log_text(runner_a)
    with open(osp.join(runner_a.log_dir, 'vis_data', 'scalars.json')) as f:
        records = [json.loads(line) for line in f]
    sparsity = 1 - one_stream / sum(m.numel() for m in masks.values())
    assert records[0]['pruning/sparsity'] == pytest.approx(sparsity)
    assert 'pruning/backbone.streams.cls' in records[0]
    train_records = [r for r in records if 'loss' in r]
    assert [r['sparsity'] for r in train_records] == pytest.approx(
        [sparsity] * 3)

    checkpoint = load_checkpoint(tmp_path / 'a' / 'iter_2.pth')
    assert checkpoint['meta']['pruning']['kept'] == one_stream
    assert not any(k.endswith(('_orig', '_mask'))
                   for k in checkpoint['state_dict'])
    for name, mask in checkpoint['pruning_masks'].items():
        assert torch.equal(checkpoint['state_dict'][name] != 0, mask), name

    cfg_b = prune_cfg(tmp_path / 'b', tmp_path / 'a' / 'iter_2.pth')
    cfg_b.resume = True
    runner_b = Runner.from_cfg(cfg_b)
    runner_b.train()
    assert runner_b.iter == 3
    # Re-ranking would find the same masks here (the pruned weights are the
    # zeros), so the log tells that they were restored.
    assert ('MagnitudePruningHook restored the pruning masks of iteration 2'
            in log_text(runner_b))
    masks_b = pruning_hook(runner_b).masks
    assert all(torch.equal(masks_b[n], m) for n, m in masks.items())
    state_a, state_b = model_a.state_dict(), runner_b.model.state_dict()
    for key, value in state_a.items():
        torch.testing.assert_close(state_b[key], value, atol=1e-5, rtol=0,
                                   msg=key)

    del checkpoint['pruning_masks']
    torch.save(checkpoint, tmp_path / 'no_masks.pth')
    cfg_c = prune_cfg(tmp_path / 'c', tmp_path / 'no_masks.pth')
    cfg_c.resume = True
    with pytest.raises(RuntimeError, match='no `pruning_masks`'):
        Runner.from_cfg(cfg_c).train()
    cfg_d = prune_cfg(tmp_path / 'd', tmp_path / 'expansion.pth')
    cfg_d.load_from = None
    with pytest.raises(RuntimeError, match='no checkpoint was loaded'):
        Runner.from_cfg(cfg_d).train()
