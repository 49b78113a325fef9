"""IterationCostHook: FLOPs (counted and ideal), time, memory and parameters
of a training iteration, on the demo Expansion and Squeeze Runners and on
a ResNet-18 counted by hand."""
import json
import os.path as osp

import pytest
import torch
from _tools import isolate_run
from mmdet.models.backbones import ResNet
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.runner import Runner

import xlearner_mm  # noqa: F401
from xlearner_mm.engine import CPUAmpOptimWrapper, IterationCostHook
from xlearner_mm.engine.hooks.iteration_cost_hook import (cost_streams,
                                                         held_teachers,
                                                         record_call,
                                                         stream_flops)
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules
from xlearner_mm.utils.compat import flop_counter, flop_total

from test_distiller import save_teacher, squeeze_cfg

register_all_modules()

DEMO_CFG = 'configs/demo/expansion_demo.py'
SQUEEZE_DEMO = 'configs/demo/squeeze_demo.py'
FIELDS = {
    'rank', 'world_size', 'model', 'torch', 'device', 'counted_iter',
    'flops_per_iter', 'flops_by_op', 'ideal_flops_per_iter', 'stream_calls',
    'streams', 'timed_iters', 'sec_per_iter', 'median_sec_per_iter',
    'peak_memory_bytes', 'peak_memory_kind', 'params_total',
    'params_trained', 'params_held_teachers'
}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_with_hook(cfg, max_iters=3) -> dict:
    """Train ``cfg`` for ``max_iters`` iterations with the hook counting
    iteration 1 and return its JSON."""
    cfg.train_cfg.max_iters = max_iters
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='IterationCostHook', count_iter=1)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    with open(osp.join(cfg.work_dir, 'iteration_cost.json')) as f:
        report = json.load(f)
    assert set(report) == FIELDS
    assert report['rank'] == 0 and report['world_size'] == 1
    assert report['counted_iter'] == 1
    assert report['flops_per_iter'] > report['ideal_flops_per_iter'] > 0
    assert report['timed_iters'] == [0, 2]
    assert len(report['sec_per_iter']) == 2
    assert report['median_sec_per_iter'] > 0
    assert report['peak_memory_bytes'] > 0
    assert report['peak_memory_kind'] == 'cpu_max_rss'
    assert report['params_total'] >= report['params_trained'] > 0
    assert report['ideal_flops_per_iter'] == sum(
        c['ideal_flops'] for c in report['stream_calls'])
    return report


def grouped(calls, size):
    return [calls[i:i + size] for i in range(0, len(calls), size)]


@pytest.mark.parametrize('amp', [False, True], ids=['fp32', 'cpu_amp'])
def test_demo_expansion(demo_data, tmp_path, one_thread, amp):
    """Reconciliation on: each task's batch runs every stream, its own with
    autograd (forward + backward) and the others under no_grad; also under
    bfloat16 CPU autocast (CPUAmpOptimWrapper, the mmcv ops of the
    detector in float32)."""
    cfg = Config.fromfile(DEMO_CFG)
    isolate_run(cfg, tmp_path, 'cost')
    for loader in cfg.train_dataloader.values():
        loader.update(num_workers=0, persistent_workers=False)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.custom_hooks[1].tau = 0
    if amp:
        cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
    report = train_with_hook(cfg)
    tasks = ('cls', 'det', 'seg')
    names = [f'backbone.streams.{t}' for t in tasks]
    assert set(report['streams']) == set(names)
    calls = report['stream_calls']
    assert len(calls) == 3 * len(tasks)
    for task, group in zip(tasks, grouped(calls, len(tasks))):
        assert [c['stream'] for c in group] == names
        assert len({tuple(c['shape']) for c in group}) == 1  # one batch
        for call in group:
            own = call['stream'] == f'backbone.streams.{task}'
            assert call['backward'] == call['grad_enabled'] == own
            assert call['ideal_on'] == 'meta'
            assert call['autocast'] == ('bfloat16' if amp else None)
            if own:
                ratio = call['ideal_flops'] / call['ideal_forward_flops']
                assert 2.5 < ratio <= 3
            else:
                assert call['ideal_flops'] == call['ideal_forward_flops']
    assert report['params_held_teachers'] == {}


def test_ideal_of_resnet18_is_what_flop_counter_counts(one_thread):
    """A plain ResNet-18 forward + backward counted by FlopCounterMode is
    the hook's ideal of a back-propagated call of it, on the meta device
    and on the CPU, about 3 times its forward; the ideal leaves the BN
    statistics and the gradients alone."""
    torch.manual_seed(0)
    resnet = ResNet(depth=18, out_indices=(0, 1, 2, 3))
    resnet.train()
    x = torch.randn(2, 3, 64, 64)
    call = record_call('backbone', resnet, x)
    assert call['backward'] and not call['input_requires_grad']
    state = {k: v.clone() for k, v in resnet.state_dict().items()}
    ideal = stream_flops(resnet, call)
    on_cpu = stream_flops(resnet, call, on_meta=False)
    assert ideal['ideal_on'] == 'meta' and on_cpu['ideal_on'] == 'cpu'
    for key, value in resnet.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(p.grad is None for p in resnet.parameters())

    with flop_counter() as counter:
        outs = resnet(x)
        forward = flop_total(counter)
        sum(out.sum() for out in outs).backward()
    assert ideal['ideal_forward_flops'] == on_cpu['ideal_forward_flops'] \
        == forward > 0
    assert ideal['ideal_flops'] == on_cpu['ideal_flops'] == flop_total(
        counter)
    assert 2.5 < flop_total(counter) / forward <= 3
    with torch.no_grad():
        no_grad = record_call('backbone', resnet, x)
    assert not no_grad['backward']
    assert stream_flops(resnet, no_grad)['ideal_flops'] == forward


class ReadsAValue(torch.nn.Module):
    """A backbone that reads a value while it runs: no meta run."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return y * 0 if y.abs().max().item() > 1e9 else y


def test_ideal_falls_back_to_the_device_keeping_the_buffers():
    net = ReadsAValue().train()
    x = torch.randn(2, 3, 8, 8)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    ideal = stream_flops(net, record_call('net', net, x))
    assert ideal['ideal_on'] == 'cpu'
    conv = 2 * 2 * 6 * 6 * 4 * 3 * 3 * 3  # 2 * N * H'W' * C_out * k*k*C_in
    assert ideal['ideal_forward_flops'] == conv
    assert ideal['ideal_flops'] == 2 * conv  # the weight gradient only
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(p.grad is None for p in net.parameters())


def classifier():
    return MODELS.build(dict(
        type='mmpretrain.ImageClassifier',
        _scope_='mmpretrain',
        data_preprocessor=dict(type='ClsDataPreprocessor'),
        backbone=dict(type='mmdet.ResNet', depth=18, base_channels=8,
                      out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64)))


class FakeRunner:
    """What the hook reads of a Runner."""

    def __init__(self, model, work_dir):
        self.model, self.work_dir, self.iter = model, str(work_dir), 0



def test_stock_model_in_ddp_under_cpu_autocast(tmp_path, process_group,
                                                one_thread):
    """A stock classifier inside mmengine's DDP wrapper, its steps under
    bfloat16 CPU autocast (CPUAmpOptimWrapper): the stream is its
    backbone, the counted iteration holds its forward, backward and the
    optimizer's step."""
    from mmpretrain.structures import DataSample
    model = classifier()
    ddp = MMDistributedDataParallel(model)
    assert cost_streams(ddp) == {'backbone': model.backbone}
    assert held_teachers(ddp) == {}
    optim = CPUAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    runner = FakeRunner(ddp, tmp_path)
    hook = IterationCostHook(count_iter=1)
    data = dict(inputs=[torch.zeros(3, 32, 32, dtype=torch.uint8)] * 2,
                data_samples=[DataSample().set_gt_label(1)] * 2)
    for i in range(3):
        runner.iter = i
        hook.before_train_iter(runner, i, data)
        ddp.train_step(data, optim)
        hook.after_train_iter(runner, i, data)
    hook.after_train(runner)
    with open(tmp_path / 'iteration_cost.json') as f:
        report = json.load(f)
    call, = report['stream_calls']
    assert call['autocast'] == 'bfloat16' and call['backward']
    assert call['shape'] == [2, 3, 32, 32]
    assert report['flops_per_iter'] > report['ideal_flops_per_iter'] > 0
    assert report['sec_per_iter'] and report['timed_iters'] == [0, 2]
    # Counted once: the FlopCounterMode and the stream hooks are gone.
    assert hook._counter is None and not hook._handles
    assert not model.backbone._forward_pre_hooks
    assert hook.out_path(runner, 1) == str(
        tmp_path / 'iteration_cost.rank1.json')


def test_demo_squeeze(demo_data, tmp_path, one_thread):
    """The teacher's streams run without autograd, the student with; the
    frozen teacher's parameters are counted apart."""
    cfg = Config.fromfile(SQUEEZE_DEMO)
    teacher_ckpt = save_teacher(cfg.model.teacher, tmp_path / 'expansion.pth')
    cfg = squeeze_cfg(tmp_path / 'work', teacher_ckpt, 3)
    report = train_with_hook(cfg)
    tasks = ('cls', 'det', 'seg')
    teacher = [f'teacher.backbone.streams.{t}' for t in tasks]
    assert set(report['streams']) == set(teacher) | {'student'}
    calls = report['stream_calls']
    assert len(calls) == len(tasks) * (1 + len(tasks))
    for group in grouped(calls, 1 + len(tasks)):
        assert [c['stream'] for c in group] == ['student'] + teacher
        assert [c['backward'] for c in group] == [True] + [False] * 3
        assert len({tuple(c['shape']) for c in group}) == 1
    assert set(report['params_held_teachers']) == {'teacher'}
    assert report['params_held_teachers']['teacher'] > 0
    assert report['streams']['student']['params'] <= report['params_trained']
