"""xlearner_mm.utils.compat on the installed torch and mmengine (CI runs the
suite on torch 2.1.2 and torch 2.14.1, both with mmengine 0.10.7).

Each test checks a private name or behaviour that compat.py (or one of the
two private overrides it lists) relies on; a failure says what changed and
what to fix.
"""
import collections
import inspect
import pickle

import mmengine
import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner import IterBasedTrainLoop, Runner
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import xlearner_mm  # noqa: F401  (the checkpoint allow-list)
from xlearner_mm.engine import AtomicCheckpointHook, AtomicLocalBackend
from xlearner_mm.models.distillers.frozen_teacher import FrozenTeacherMixin
from xlearner_mm.registry import HOOKS, LOOPS, METRICS
from xlearner_mm.utils.compat import (ddp_ignore_params_and_buffers,
                                      ddp_remove_autograd_hooks,
                                      has_safe_globals,
                                      is_cpu_autocast_enabled,
                                      iterator_for_resume_advance,
                                      load_checkpoint, record_init_info,
                                      runner_load_from,
                                      runner_resumes, set_runner_load_from,
                                      torch_version)

from test_reliability import fast_runner, toy_cfg, train_toy  # noqa: F401

MMENGINE = f'mmengine {mmengine.__version__}'
TORCH = f'torch {torch.__version__}'


def changed(version: str, what: str, fix: str) -> str:
    """The message of a failed check: what changed, in which version, and
    what to fix."""
    return f'{version} {what}. Fix: {fix}.'


# ------------------------------------------------------- torch versions


def test_cpu_autocast_state():
    assert not is_cpu_autocast_enabled()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert is_cpu_autocast_enabled()
    assert not is_cpu_autocast_enabled()


def test_safe_globals_exist_from_torch_2_4():
    assert has_safe_globals() == (torch_version() >= (2, 4))


def test_autocast_dtype():
    from xlearner_mm.utils.compat import autocast_dtype
    assert autocast_dtype('cpu') is None and autocast_dtype('cuda') is None
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert autocast_dtype('cpu') == torch.bfloat16, changed(
            TORCH, 'reports CPU autocast differently',
            'xlearner_mm.utils.compat.autocast_dtype (IterationCostHook '
            'repeats a stream call under its autocast)')
        assert autocast_dtype('cuda') is None
    assert autocast_dtype('cpu') is None


def test_flop_counter_counts_forward_backward_and_prints_nothing(capsys):
    """A (2, 3) @ (3, 4) product is 2*2*3*4 = 48 FLOPs, its backward to
    both operands twice that. The counter is entered and exited by hand,
    as IterationCostHook does across two hook calls, and read while
    entered; inside it the optimizer's foreach ops run."""
    from xlearner_mm.utils.compat import (flop_counter, flop_counts_by_op,
                                          flop_total)
    a = torch.randn(2, 3, requires_grad=True)
    b = torch.randn(3, 4, requires_grad=True)
    optimizer = torch.optim.SGD([a, b], lr=0.1, momentum=0.9, foreach=True)
    counter = flop_counter()
    counter.__enter__()
    try:
        out = a @ b
        assert flop_total(counter) == 48
        out.sum().backward()
        optimizer.step()
    finally:
        counter.__exit__(None, None, None)
    fix = 'xlearner_mm.utils.compat.flop_counter and its readers'
    assert flop_total(counter) == 3 * 48, changed(
        TORCH, f'FlopCounterMode counts {flop_total(counter)} FLOPs for a '
        '(2, 3) @ (3, 4) product and its backward, not 144', fix)
    assert flop_counts_by_op(counter) == {'aten.mm': 3 * 48}, changed(
        TORCH, 'FlopCounterMode names its ops otherwise '
        f'({flop_counts_by_op(counter)})', fix)
    assert capsys.readouterr().out == '', changed(
        TORCH, 'FlopCounterMode(display=False) prints its table', fix)
    with flop_counter() as again:  # a fresh counter starts from 0
        a.detach() @ b.detach()
    assert flop_total(again) == 48


def test_mmengine_checkpoint_loads(tmp_path):
    """What mmengine's CheckpointHook pickles (a HistoryBuffer with numpy
    values in the message hub) loads on every stack."""
    buffer = HistoryBuffer()
    buffer.update(1.5)
    path = tmp_path / 'iter_1.pth'
    torch.save(dict(state_dict=collections.OrderedDict(w=torch.ones(2)),
                    message_hub=dict(log_scalars={'loss': buffer})), path)
    checkpoint = load_checkpoint(str(path))
    assert torch.equal(checkpoint['state_dict']['w'], torch.ones(2))
    assert checkpoint['message_hub']['log_scalars']['loss'].current() == 1.5


class Payload:
    """A class no allow-list names."""


@pytest.mark.skipif(not has_safe_globals(),
                    reason='torch<2.4 has no weights-only allow-list')
def test_other_classes_are_refused(tmp_path):
    path = tmp_path / 'payload.pth'
    torch.save(dict(payload=Payload()), path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(str(path))


# ------------------------------------------------- torch: Module._apply


class TeacherHolder(FrozenTeacherMixin, nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.student = nn.Linear(1, 1)
        self.hold_teacher(nn.Linear(1, 1))


@pytest.mark.parametrize('move, dtype', [
    (lambda module: module.double(), torch.float64),
    (lambda module: module.half(), torch.float16),
    (lambda module: module.to(torch.bfloat16), torch.bfloat16),
    (lambda module: module.to('cpu', torch.float64), torch.float64),
])
def test_moves_reach_the_held_teacher(move, dtype):
    """FrozenTeacherMixin overrides nn.Module._apply, through which torch
    makes every device and dtype move."""
    holder = TeacherHolder()
    assert move(holder) is holder
    assert holder.student.weight.dtype == dtype
    assert holder.teacher.weight.dtype == dtype, changed(
        TORCH, 'no longer makes this move through nn.Module._apply, so a '
        "teacher held outside the module tree stays at its dtype/device",
        'override the method that moves now in FrozenTeacherMixin '
        '(xlearner_mm/models/distillers/frozen_teacher.py) and '
        'xlearner_mm.utils.compat.module_apply')


# ------------------------------------------------- torch: DDP internals


class TwoLayers(nn.Module):
    """``first`` always trains, ``second`` only with ``use_second``."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(2, 2)
        self.second = nn.Linear(2, 2)
        self.use_second = False

    def forward(self, x):
        x = self.first(x)
        return self.second(x) if self.use_second else x


def reduced(ddp: DistributedDataParallel, steps: int = 2) -> list:
    """Train ``steps`` steps; the names of the parameters DDP reduced, one
    set per reduction (a comm hook sees every bucket)."""
    names = {param: name for name, param in ddp.module.named_parameters()}
    seen = []

    def record(state, bucket):
        seen.append({names[param] for param in bucket.parameters()})
        future = torch.futures.Future()
        future.set_result(bucket.buffer())
        return future

    ddp.register_comm_hook(None, record)
    for _ in range(steps):
        ddp(torch.ones(1, 2)).sum().backward()
    return seen



def test_ddp_private_methods_exist():
    for name in ('_set_params_and_buffers_to_ignore_for_model',
                 '_remove_autograd_hooks'):
        assert callable(getattr(DistributedDataParallel, name, None)), \
            changed(TORCH, f'has no DistributedDataParallel.{name}',
                    'find its replacement for xlearner_mm.utils.compat '
                    '(ReconciliationSwitchHook re-wraps the model at tau)')


def test_ddp_ignores_the_named_parameters(process_group):
    model = TwoLayers()
    ddp_ignore_params_and_buffers(model, ['second.weight', 'second.bias'])
    # Without it, the unused `second` fails the second step ("Expected to
    # have finished reduction in the prior iteration").
    seen = reduced(DistributedDataParallel(model))
    assert seen and all(names == {'first.weight', 'first.bias'}
                        for names in seen), changed(
        TORCH, 'no longer leaves the parameters named by '
        'DistributedDataParallel._set_params_and_buffers_to_ignore_for_model'
        f' out of its reducer (reduced: {seen})',
        'xlearner_mm.utils.compat.ddp_ignore_params_and_buffers')


def test_ddp_rewrap_after_removing_the_autograd_hooks(process_group):
    """ReconciliationSwitchHook at tau: the first wrapper ignored
    ``second``; the second wrapper reduces every parameter, alone."""
    model = TwoLayers()
    ddp_ignore_params_and_buffers(model, ['second.weight', 'second.bias'])
    first = DistributedDataParallel(model)
    seen_by_first = reduced(first, steps=1)
    ddp_remove_autograd_hooks(first)
    ddp_ignore_params_and_buffers(model, [])
    model.use_second = True
    seen_by_second = reduced(DistributedDataParallel(model))
    assert len(seen_by_first) == 1, changed(
        TORCH, 'DistributedDataParallel._remove_autograd_hooks no longer '
        'detaches the reducer of a wrapper from the gradients: the old '
        'wrapper of a re-wrapped model still reduces',
        'xlearner_mm.utils.compat.ddp_remove_autograd_hooks')
    assert seen_by_second and set.union(*seen_by_second) == {
        'first.weight', 'first.bias', 'second.weight', 'second.bias'}, \
        changed(TORCH, 'keeps ignoring parameters after '
                '_set_params_and_buffers_to_ignore_for_model(module, [])',
                'xlearner_mm.utils.compat.ddp_ignore_params_and_buffers')


# -------------------------------------------- mmengine: Runner load_from


def test_runner_load_from_and_resume(tmp_path, fast_runner):  # noqa: F811
    run = tmp_path / 'run'
    train_toy(run, max_iters=4)  # iter_2.pth and iter_4.pth, the latest
    first = str(run / 'iter_2.pth')

    # A Runner built from arguments has an empty cfg: hence the private
    # attributes.
    runner = Runner(**toy_cfg(tmp_path / 'direct'), load_from=first,
                    resume=True)
    assert (runner_load_from(runner), runner_resumes(runner)) == (
        first, True), changed(
            MMENGINE, 'no longer keeps Runner(load_from=..., resume=...) in '
            'runner._load_from and runner._resume',
            'xlearner_mm.utils.compat.runner_load_from / runner_resumes '
            '(read by CheckpointConsistencyHook)')

    auto = Runner(**toy_cfg(run, max_iters=4), resume=True)
    assert runner_load_from(auto) is None
    set_runner_load_from(auto, first)
    auto.load_or_resume()
    assert auto.iter == 2, changed(
        MMENGINE, 'Runner.load_or_resume no longer resumes from '
        'runner._load_from when resume=True (an automatic resume with a '
        'damaged latest checkpoint would not fall back to an intact one)',
        'xlearner_mm.utils.compat.set_runner_load_from')


# ---------------------------- mmengine: IterBasedTrainLoop resume advance

EVENTS = []


@LOOPS.register_module(force=True)
class AdvanceRecordingLoop(IterBasedTrainLoop):
    """IterBasedTrainLoop whose iterator records what mmengine takes of it,
    behind the placeholders of iterator_for_resume_advance."""

    def run(self):
        batches = iterator_for_resume_advance(iter(self.dataloader),
                                              self.iter)
        self.dataloader_iterator = (
            EVENTS.append('placeholder' if batch is None else 'batch')
            or batch for batch in batches)
        return super().run()


@HOOKS.register_module(force=True)
class EventHook(Hook):

    def before_train_epoch(self, runner) -> None:
        EVENTS.append('before_train_epoch')

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        EVENTS.append('before_train_iter')


def test_iter_based_loop_advances_a_resumed_run_by_next_calls(
        tmp_path, fast_runner):  # noqa: F811
    """MultiTaskIterBasedTrainLoop positions its data itself and gives
    mmengine's advance placeholders; mmengine must take exactly
    ``runner.iter`` of them, after before_train_epoch, before training."""
    train_toy(tmp_path / 'run', max_iters=2)
    cfg = toy_cfg(tmp_path / 'resumed', max_iters=4)
    cfg.update(
        train_cfg=dict(type='AdvanceRecordingLoop', max_iters=4),
        custom_hooks=[dict(type='EventHook')],
        load_from=str(tmp_path / 'run' / 'iter_2.pth'),
        resume=True)
    EVENTS.clear()
    Runner.from_cfg(mmengine.Config(cfg)).train()
    expected = ['before_train_epoch', 'placeholder', 'placeholder'] + [
        'batch', 'before_train_iter'] * 2
    assert EVENTS == expected, changed(
        MMENGINE, 'IterBasedTrainLoop.run no longer advances a run resumed '
        'at iteration n by n next() calls on loop.dataloader_iterator '
        'between before_train_epoch and the first iteration (expected '
        f'{expected}, got {EVENTS}): MultiTaskIterBasedTrainLoop would skip '
        'data twice or train on placeholders',
        'xlearner_mm.utils.compat.iterator_for_resume_advance and '
        'MultiTaskIterBasedTrainLoop.run')


# -------------------------- mmengine: CheckpointHook (AtomicCheckpointHook)


def test_checkpoint_hook_saves_through_save_checkpoint_with_step():
    method = getattr(mmengine.hooks.CheckpointHook,
                     '_save_checkpoint_with_step', None)
    assert method is not None and list(inspect.signature(
        method).parameters) == ['self', 'runner', 'step', 'meta'], changed(
            MMENGINE, 'has no CheckpointHook._save_checkpoint_with_step('
            'runner, step, meta), which AtomicCheckpointHook overrides to '
            'save before removing',
            'port AtomicCheckpointHook._save_checkpoint_with_step '
            '(xlearner_mm/engine/hooks/atomic_checkpoint_hook.py)')


@METRICS.register_module(force=True)
class RisingScore(BaseMetric):
    """A score that rises with every validation: each is the best."""
    default_prefix = ''
    evaluations = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results) -> dict:
        type(self).evaluations += 1
        return dict(score=float(type(self).evaluations))


def test_checkpoint_hook_saves_and_removes_where_overridden(
        tmp_path, fast_runner, monkeypatch):  # noqa: F811
    """Every periodic and best checkpoint goes through
    _save_checkpoint_with_step, and after_val_epoch removes the previous
    best checkpoint through the file backend (AtomicCheckpointHook defers
    the removal until after the save)."""
    events = []
    real_save, real_remove = Runner.save_checkpoint, AtomicLocalBackend.remove
    real_step = AtomicCheckpointHook._save_checkpoint_with_step

    def save(runner, out_dir, filename, *args, **kwargs):
        events.append(('save', filename))
        return real_save(runner, out_dir, filename, *args, **kwargs)

    def remove(backend, path):
        events.append(('remove', path.rsplit('/', 1)[-1]))
        return real_remove(backend, path)

    def step(hook, runner, step, meta):
        events.append(('step', step))
        return real_step(hook, runner, step, meta)

    monkeypatch.setattr(Runner, 'save_checkpoint', save)
    monkeypatch.setattr(AtomicLocalBackend, 'remove', remove)
    monkeypatch.setattr(AtomicCheckpointHook, '_save_checkpoint_with_step',
                        step)
    cfg = toy_cfg(tmp_path, max_iters=4, save_best='score', rule='greater',
                  max_keep_ckpts=1)
    cfg.update(
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=4,
                       val_interval=2),
        val_dataloader=cfg['train_dataloader'],
        val_evaluator=dict(type='RisingScore'),
        val_cfg=dict(type='ValLoop'))
    Runner.from_cfg(mmengine.Config(cfg)).train()
    assert events == [
        ('step', 2), ('save', 'iter_2.pth'),
        ('save', 'best_score_iter_2.pth'),
        ('step', 2),  # mmengine saves again, with the best in the hub
        ('save', 'iter_2.pth'),
        ('step', 4), ('save', 'iter_4.pth'), ('remove', 'iter_2.pth'),
        ('save', 'best_score_iter_4.pth'), ('step', 4),
        ('save', 'iter_4.pth'), ('remove', 'best_score_iter_2.pth'),
    ], changed(
        MMENGINE, 'CheckpointHook saves or removes checkpoints other than '
        f'through _save_checkpoint_with_step and file_backend.remove: '
        f'{events}', 'AtomicCheckpointHook (its save order and the deferred '
        'removal of after_val_epoch)')


def test_init_info_table_exists_while_init_weights_runs():
    """``record_init_info`` (ZooPretrained's line in the init log) relies on
    mmengine setting ``_params_init_info`` on a module before its init_cfg
    runs."""
    from mmengine.model import BaseModule
    from mmengine.registry import WEIGHT_INITIALIZERS

    seen = []

    @WEIGHT_INITIALIZERS.register_module(
        name='XLearnerCompatProbeInit', force=True)
    class ProbeInit:

        def __init__(self, **kwargs) -> None:
            pass

        def __call__(self, module) -> None:
            seen.append(hasattr(module, '_params_init_info'))
            record_init_info(module, 'probe')

    module = BaseModule(init_cfg=dict(type='XLearnerCompatProbeInit'))
    module.register_parameter('weight', nn.Parameter(torch.zeros(2)))
    module.init_weights()
    assert seen == [True], (
        f'mmengine {mmengine.__version__} no longer sets _params_init_info '
        'before running an init_cfg: ZooPretrained loads are then missing '
        'from the init log. Fix: xlearner_mm.utils.compat.record_init_info')
    assert record_init_info(nn.Linear(1, 1), 'outside init_weights') is None
