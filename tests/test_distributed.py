"""Multi-process training (``tools/dist_train.sh``, 2 CPU processes on gloo),
mixed precision on CPU (``--amp``: bfloat16) and the SyncBN switch.

The through-tau run of the expansion demo with 2 processes is
``test_expansion_e2e.py::test_dist_train_two_processes``.
"""
import copy
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest
import torch
from _tools import REPO_ROOT
from mmengine.config import Config
from mmengine.runner import Runner
from torch import nn

import xlearner_mm  # noqa: F401  (checkpoint allow-list)
from xlearner_mm.apis import setup_amp, setup_cpu_distributed
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

EXPANSION_DEMO = 'configs/demo/expansion_demo.py'
SQUEEZE_DEMO = 'configs/demo/squeeze_demo.py'

# A hook that writes iteration 1's losses averaged over the ranks (mmengine
# logs rank 0's only) to <work_dir>/losses_iter1.json.
LOSS_HOOK = '''
import json, os.path as osp
import torch, torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class RankMeanLossHook(Hook):
    priority = 'VERY_LOW'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter != 0:
            return
        keys = sorted(k for k in outputs if 'loss' in k)
        values = torch.stack([outputs[k].detach().double() for k in keys])
        world = dist.get_world_size() if dist.is_initialized() else 1
        if world > 1:
            dist.all_reduce(values)
        if not dist.is_initialized() or dist.get_rank() == 0:
            with open(osp.join(runner.work_dir, 'losses_iter1.json'),
                      'w') as f:
                json.dump(dict(zip(keys, (values / world).tolist()),
                               world_size=world), f)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def dist_train(config, work_dir, *options, amp: bool = False) -> str:
    """``bash tools/dist_train.sh CONFIG 2 [--amp]``; returns its output."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(work_dir.parent), env.get('PYTHONPATH')) if p)
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir',
         str(work_dir), *(['--amp'] if amp else []),
         *(['--cfg-options', *options] if options else [])],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    problems = '\n'.join(
        line for line in output.splitlines()
        if re.search(r'Error|Traceback|terminate', line))
    assert proc.returncode == 0, f'{problems}\n...\n{output[-3000:]}'
    return output


# Run in a fresh process: a 1-rank gloo process group, a DDP model held in
# a reference cycle (as the Runner holds its model) and a collective; prints
# the process's thread count before the process group and after the run.
TEARDOWN = '''
import os, socket, sys
import torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from xlearner_mm.utils import releasing_process_group


def threads():
    return len(os.listdir('/proc/self/task'))


def run():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=0, world_size=1)
    runner = {}
    runner['self'] = runner
    runner['model'] = DistributedDataParallel(nn.Linear(2, 1))
    runner['model'](torch.ones(3, 2)).sum().backward()
    dist.all_gather([torch.zeros(2)], torch.ones(2))
    if sys.argv[1] == 'error':
        raise RuntimeError('the run failed')


torch.set_num_threads(1)
torch.ones(4, 4) @ torch.ones(4, 4)  # intra-op threads, if any, start here
before = threads()
try:
    if sys.argv[1] == 'destroy only':
        try:
            run()
        finally:
            dist.destroy_process_group()
    else:
        with releasing_process_group():
            run()
finally:
    print('threads', before, threads())
'''


@pytest.mark.parametrize('how', ['finished', 'error', 'destroy only'])
def test_process_group_threads_end_with_the_run(how, tmp_path):
    """tools/train.py's and test.py's teardown: Gloo's worker threads must
    have ended when the run returns. Left alive into interpreter shutdown,
    one of them freeing its last collective's tensors needs the GIL and
    aborts the finished rank (SIGABRT). ``destroy_process_group`` alone
    leaves them running, since the DDP wrapper in the Runner's reference
    cycles still holds the process group."""
    proc = subprocess.run(
        [sys.executable, '-c', TEARDOWN, how], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    counts = re.search(r'threads (\d+) (\d+)', proc.stdout)
    assert counts, proc.stdout + proc.stderr[-3000:]
    before, after = map(int, counts.groups())
    if how == 'destroy only':
        assert after > before  # the worker threads outlive the run
    else:
        assert after == before, proc.stderr[-3000:]
        assert proc.returncode == (0 if how == 'finished' else 1)
        if how == 'error':
            assert 'RuntimeError: the run failed' in proc.stderr


def short_run(cfg: Config, work_dir, max_iters: int) -> Config:
    """``cfg`` for a few iterations in ``work_dir``: no workers, no
    validation, seed 0, a checkpoint at the end."""
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'dist_{osp.basename(work_dir)}_{os.getpid()}'
    cfg.visualizer = dict(type='Visualizer', name=cfg.experiment_name,
                          vis_backends=[dict(type='LocalVisBackend')])
    for loader in cfg.train_dataloader.values():
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.randomness = dict(seed=0)
    return cfg


def layout(path) -> tuple:
    """What a checkpoint holds: its top-level keys, its meta keys and the
    names and shapes of its weights."""
    ckpt = torch.load(path)
    return (sorted(ckpt), sorted(ckpt['meta']),
            {k: tuple(v.shape) for k, v in ckpt['state_dict'].items()})


@pytest.fixture
def fast_config_text(monkeypatch):
    """Skip yapf's formatting of the config text the Runner logs and dumps
    (seconds per Runner on 2 loaded cores)."""
    monkeypatch.setattr('mmengine.config.config.FormatCode',
                        lambda text, **kwargs: (text, None))
    torch.set_num_threads(1)


# ------------------------------------------------ first-iteration equality


def equality_cfg(per_rank: int) -> Config:
    """The expansion demo with cls and seg, ``per_rank`` segmentation and
    2 * ``per_rank`` classification images per process, made deterministic
    per sample so that the global batch, not its split, sets the loss:

    - no random augmentation (fixed resizes, no flip or crop);
    - stream BN in eval mode (``norm_eval``: per-rank batch statistics of b
      images are not those of 2b) and an FCN head without conv/BN or
      dropout; iteration 1 is before tau, so the neck's BN does not run;
    - no detection: its RPN/RoI sampling is random and its losses are
      normalised per batch (e.g. by the number of sampled anchors), so the
      mean of two half-batch losses is not the full-batch loss.

    What stays: the classification loss is a mean over images and the
    segmentation loss a mean over the pixels of same-sized images, and the
    SourceMixSampler composes the global batch and deals its slots to the
    ranks, so the two ranks' batches together are the 1-process batch of
    twice the size (tests/test_source_mix_sampler.py checks the indices).
    """
    cfg = Config.fromfile(EXPANSION_DEMO)
    del cfg.model.task_models['det']
    del cfg.train_dataloader['det']
    cfg.model.backbone.backbone.norm_eval = True
    cfg.model.task_models.seg.decode_head.shared.update(
        num_convs=0, channels=128, dropout_ratio=0.)
    pipelines = dict(
        cls=[dict(type='mmpretrain.LoadImageFromFile'),
             dict(type='mmpretrain.Resize', scale=(64, 64)),
             dict(type='mmpretrain.PackInputs')],
        seg=[dict(type='mmseg.LoadImageFromFile'),
             dict(type='mmseg.LoadAnnotations'),
             dict(type='mmseg.Resize', scale=(64, 64), keep_ratio=False),
             dict(type='mmseg.PackSegInputs')])
    for task, batch_size in (('cls', 2 * per_rank), ('seg', per_rank)):
        loader = cfg.train_dataloader[task]
        loader.batch_size = loader.sampler.batch_size = batch_size
        loader.dataset.pipeline = pipelines[task]
    cfg.custom_hooks = [
        dict(type='ReconciliationSwitchHook', tau=1),
        dict(type='RankMeanLossHook'),
    ]
    cfg.custom_imports = dict(imports=['xlearner_dist_loss_hook'],
                              allow_failed_imports=False)
    return cfg


@pytest.mark.slow
def test_two_processes_match_one_process(demo_data, tmp_path, monkeypatch,
                                         fast_config_text):
    """2 processes with per-process batch b and 1 process with 2b, same seed:
    iteration 1's losses (averaged over the ranks) agree within 1e-4, and
    both write the same checkpoint layout. (Iteration 2 is there because a
    tau that is not below max_iters is refused.)"""
    (tmp_path / 'xlearner_dist_loss_hook.py').write_text(LOSS_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))

    config = tmp_path / 'two_procs.py'
    short_run(equality_cfg(per_rank=2), tmp_path / 'two', 2).dump(config)
    output = dist_train(config, tmp_path / 'two')
    assert 'DistributedDataParallel ignores the parameters' in output
    two = json.loads((tmp_path / 'two' / 'losses_iter1.json').read_text())

    register_all_modules(init_default_scope=False)
    cfg = short_run(equality_cfg(per_rank=4), tmp_path / 'one', 2)
    cfg.dump(tmp_path / 'one_proc.py')  # the same text as the dist config
    Runner.from_cfg(Config.fromfile(tmp_path / 'one_proc.py')).train()
    one = json.loads((tmp_path / 'one' / 'losses_iter1.json').read_text())

    assert (one.pop('world_size'), two.pop('world_size')) == (1, 2)
    assert set(one) == set(two) >= {
        'loss', 'cls.folder_cls.loss', 'cls.annfile_cls.loss',
        'seg.decode.ade.loss_ce'}
    for key in one:
        assert abs(one[key] - two[key]) < 1e-4, (key, one[key], two[key])
    assert layout(tmp_path / 'one' / 'iter_2.pth') == layout(
        tmp_path / 'two' / 'iter_2.pth')


# ------------------------------------------------------------ squeeze


def save_demo_teacher(path) -> str:
    """A freshly built demo expansion model saved as CheckpointHook does
    (the squeeze demo's teacher)."""
    register_all_modules(init_default_scope=False)
    model = MODELS.build(Config.fromfile(EXPANSION_DEMO).model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return str(path)


# A small student for the squeeze runs (the demo's is a ResNet-50).
SMALL_STUDENT = dict(depth=18, base_channels=16)


@pytest.mark.slow
def test_squeeze_demo_two_processes_and_amp(demo_data, tmp_path,
                                            fast_config_text):
    """tools/dist_train.sh --amp on the squeeze demo: the frozen teacher's
    parameters (requires_grad False) are left out by DDP, every student and
    guidance parameter is reduced, and the checkpoint has the layout of a
    1-process run (with --amp's CPU wrapper too; 2 iterations, the
    convolutions of teacher and student in bfloat16)."""
    teacher = save_demo_teacher(tmp_path / 'expansion.pth')
    options = dict(
        {f'model.student.{k}': v for k, v in SMALL_STUDENT.items()},
        **{'model.teacher_checkpoint': teacher,
           'train_cfg.max_iters': 1,
           'default_hooks.checkpoint.interval': 1,
           'default_hooks.logger.interval': 1,
           'randomness.seed': 0})
    for task in ('cls', 'det', 'seg'):
        options[f'train_dataloader.{task}.num_workers'] = 0
        options[f'train_dataloader.{task}.persistent_workers'] = False
    output = dist_train(SQUEEZE_DEMO, tmp_path / 'two',
                        *(f'{k}={v}' for k, v in options.items()),
                        amp=True)
    assert re.search(r'Iter\(train\) \[1/1\]', output), output[-3000:]
    assert 'bfloat16 CPU autocast' in output or torch.cuda.is_available()

    register_all_modules(init_default_scope=False)
    cfg = short_run(Config.fromfile(SQUEEZE_DEMO), tmp_path / 'one', 2)
    cfg.model.student.update(SMALL_STUDENT)
    cfg.model.teacher_checkpoint = teacher
    runner = amp_train(cfg)
    one = layout(tmp_path / 'one' / 'iter_2.pth')
    assert one == layout(tmp_path / 'two' / 'iter_1.pth')
    assert {k.split('.')[0] for k in one[2]} == {'student', 'guidance'}
    assert not any(p.requires_grad
                   for p in runner.model.teacher.parameters())


# ------------------------------------------------------------------ AMP


def test_amp_picks_the_cpu_bf16_wrapper_without_gpu():
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper',
                                         optimizer=dict(type='SGD', lr=0.1))))
    setup_amp(cfg)
    if torch.cuda.is_available():
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    else:
        assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
        assert 'loss_scale' not in cfg.optim_wrapper


class DtypeRecorder:
    """Records the output dtypes of the stem convs of the ResNets: the
    sub-backbones (and, in the squeeze, the student)."""

    def __init__(self, model: nn.Module) -> None:
        self.dtypes = set()
        for name, module in model.named_modules():
            if name.endswith('conv1') and '.layer' not in name:
                module.register_forward_hook(
                    lambda m, args, out: self.dtypes.add(out.dtype))


def amp_train(cfg: Config) -> Runner:
    """Train ``cfg`` as ``tools/train.py --amp`` would on this machine and
    check, without a GPU, that the forward ran in bfloat16 (the stem convs
    of every ResNet: streams, teacher, student), the weights stayed finite
    float32, and the checkpoint was written."""
    setup_amp(cfg)
    runner = Runner.from_cfg(cfg)
    recorder = DtypeRecorder(runner.model)
    runner.train()
    if not torch.cuda.is_available():
        assert type(runner.optim_wrapper).__name__ == 'CPUAmpOptimWrapper'
    assert recorder.dtypes == {torch.bfloat16}
    for name, param in runner.model.named_parameters():
        assert param.dtype == torch.float32, name
        assert torch.isfinite(param).all(), name
    assert osp.exists(
        osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth'))
    return runner


@pytest.mark.slow
def test_amp_on_cpu_trains_the_expansion_in_bf16(demo_data, tmp_path,
                                                 fast_config_text):
    """--amp's CPU wrapper on the expansion demo, 2 iterations through tau,
    the detector's mmcv NMS and RoIAlign (float32 CPU kernels) included."""
    register_all_modules(init_default_scope=False)
    cfg = short_run(Config.fromfile(EXPANSION_DEMO), tmp_path, 2)
    cfg.custom_hooks[1].tau = 1
    amp_train(cfg)


# --------------------------------------------------------------- SyncBN


def test_sync_bn_switch_converts_the_sub_backbones_only():
    """``model.backbone.backbone.norm_cfg=dict(type='SyncBN')`` gives the
    streams torch's SyncBatchNorm and nothing else; mmengine's Runner turns
    it back into BatchNorm in a non-distributed run. (SyncBatchNorm needs
    GPU tensors in a process group: on CPU with gloo torch raises "SyncBatch
    Norm expected input tensor to be on GPU", so multi-process CPU runs keep
    BN.)"""
    register_all_modules(init_default_scope=False)
    cfg = copy.deepcopy(Config.fromfile(EXPANSION_DEMO).model)
    cfg.backbone.backbone.norm_cfg = dict(type='SyncBN', requires_grad=True)
    model = MODELS.build(cfg)
    sync = {name for name, m in model.named_modules()
            if isinstance(m, nn.SyncBatchNorm)}
    norms = {name for name, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert sync and all(n.startswith('backbone.streams.') for n in sync)
    assert {n for n in norms if n.startswith('backbone.streams.')} == sync
    assert norms - sync  # the neck's and the heads' BN stay BN

    # A multi-process CPU launch of such a config stops before training.
    train_cfg = Config(dict(launcher='pytorch', model=cfg))
    with pytest.raises(RuntimeError, match='SyncBN.*need CUDA'):
        setup_cpu_distributed(train_cfg)


# -------------------------------------------------- unused parameters


def test_neck_out_levels_builds_layers_into_read_levels_only():
    """With ``out_levels`` only the layers into the levels a task's heads
    read exist; the other levels are the stream's own features, and every
    built layer gets a gradient, so DDP needs no ``find_unused_parameters``
    after tau."""
    in_channels = dict(a=[4, 8, 16], b=[4, 8, 16], c=[8, 8, 8])
    strides = dict(a=[1, 2, 4], b=[1, 2, 4], c=[1, 2, 4])
    neck = MODELS.build(dict(type='ReconciliationNeck', groups=1,
                             in_channels=in_channels, strides=strides,
                             out_levels=dict(a=(2, ), c=(0, 2))))
    full = MODELS.build(dict(type='ReconciliationNeck', groups=1,
                             in_channels=in_channels, strides=strides))
    T, D = 3, 3
    assert full.num_layers == T * (T - 1) * D * (D + 1) // 2 == 36
    # (T-1) * sum over read levels of (1-based level): a 3, b 1+2+3, c 1+3
    assert neck.num_layers == 2 * (3 + 6 + 4) == 26
    assert set(neck.reconcilers['a']['b']) == {'0_2', '1_2', '2_2'}
    assert set(neck.reconcilers['c']['a']) == {'0_0', '0_2', '1_2', '2_2'}
    feats = {t: tuple(torch.randn(2, c, 8 // s, 8 // s, requires_grad=True)
                      for c, s in zip(in_channels[t], strides[t]))
             for t in in_channels}
    for task, read in neck.out_levels.items():
        fused = neck(feats, task)
        for i, (own, out) in enumerate(zip(feats[task], fused)):
            assert (out is own) == (i not in read), (task, i)
        sum(f.sum() for f in fused).backward()
    assert all(p.grad is not None for p in neck.parameters())
    with pytest.raises(ValueError, match=r'neck.out_levels.a must name'):
        MODELS.build(dict(type='ReconciliationNeck', in_channels=in_channels,
                          strides=strides, out_levels=dict(a=(3, ))))
    with pytest.raises(KeyError, match=r"names tasks \['x'\]"):
        MODELS.build(dict(type='ReconciliationNeck', in_channels=in_channels,
                          strides=strides, out_levels=dict(x=(0, ))))


def test_demo_configs_leave_find_unused_parameters_off():
    """The reconciliation layers' missing gradients before tau are handled by
    ReconciliationSwitchHook's DDP wrapping, not by find_unused_parameters
    (see test_expansion_e2e.py::test_dist_train_two_processes)."""
    for config in (EXPANSION_DEMO, SQUEEZE_DEMO,
                   'configs/xlearner/expansion_r50.py',
                   'configs/xlearner/squeeze_r50.py'):
        cfg = Config.fromfile(config)
        assert not cfg.get('find_unused_parameters', False), config
        assert not (cfg.get('model_wrapper_cfg') or {}).get(
            'find_unused_parameters', False), config
