"""Speed and memory ratios of xlearner_mm, each measured in one run on the
same inputs, after warm-up, as the median of several repeats. Prints one
``name: value`` line per figure (and the raw timings on ``--verbose``).

    python tools/benchmark.py                      # every figure
    python tools/benchmark.py --only expansion_overhead memory_ratio

Figures (targets in brackets):

- ``expansion_overhead`` (<= 1.10): one Expansion training step of the
  expanded ResNet-50 of ``configs/xlearner/expansion_r50.py`` (T=2,
  reconciliation on: for every task, its stream with autograd, the other
  stream under no_grad, the reconciliation layers, one backward of the summed
  losses, as ``XLearner.train_step`` does) divided by the ideal work it
  contains: each stream's own forward+backward plus the other stream's
  no_grad forward on the same batch, each timed separately. The task heads
  are left out of both sides (a feature loss stands in for them): what is
  measured is what the expansion adds.
- ``runner_overhead`` (<= 1.10): one iteration of the demo Expansion
  (``configs/demo/expansion_demo.py``) through mmengine's Runner, the
  multi-task loop and the configured hooks, divided by the same model step
  (preprocess, loss, backward, step of the same optimizer) in a bare
  PyTorch loop, both on batches already in memory.
- ``squeeze_overhead`` (<= 1.10): one distillation step of
  ``MultiTaskDistiller`` (ResNet-50 student, the expansion_r50 teacher)
  divided by the teacher's no_grad forward plus the student's
  forward+backward.
- ``memory_ratio`` (<= 2.2): peak memory of the expansion step (T=2)
  divided by that of one single-stream step (a plain ResNet-50
  forward+backward on the same batch), each in a fresh process, counted from
  before the model is built (weights and gradients included).
- ``data_wait`` (< 10%): the share of iteration time the demo Expansion
  spends waiting for data, with 2 dataloader workers per task.
- ``throughput_ratio`` (>= 0.45 on a GPU): images/s of one Expansion step
  (T=2 ResNet-50 streams, reconciliation on; the images of both tasks count)
  divided by images/s of one plain ResNet-50 forward+backward on one task's
  batch. Also prints both images/s figures.

On a GPU (``--device cuda``) every step is timed between CUDA
synchronisations, ``--amp`` runs the forward passes under float16 autocast,
``--channels-last`` stores the images and weights channels-last, and memory
is CUDA's peak allocation (weights and gradients included)::

    python tools/benchmark.py --device cuda --amp --channels-last \
        --batch-size 64 --only expansion_overhead squeeze_overhead \
        memory_ratio throughput_ratio
"""
import contextlib
import argparse
import itertools
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

R50_CONFIG = osp.join(REPO_ROOT, 'configs', 'xlearner', 'expansion_r50.py')
DEMO_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'expansion_demo.py')
SQUEEZE_CONFIG = osp.join(REPO_ROOT, 'configs', 'xlearner', 'squeeze_r50.py')
FIGURES = ('expansion_overhead', 'runner_overhead', 'squeeze_overhead',
           'memory_ratio', 'data_wait', 'throughput_ratio')
# Figures that run on a GPU with --device cuda (the others measure the CPU
# Runner and data pipeline).
DEVICE_FIGURES = ('expansion_overhead', 'squeeze_overhead', 'memory_ratio',
                  'throughput_ratio')


class Device:
    """Where the ResNet-50 measurements run: moves models and images there,
    waits for its queued work, and runs forward passes under autocast.

    Args:
        name (str): ``'cpu'`` or ``'cuda'``.
        amp (bool): float16 autocast on CUDA, bfloat16 on the CPU.
        channels_last (bool): channels-last images and weights.
    """

    def __init__(self, name: str = 'cpu', amp: bool = False,
                 channels_last: bool = False) -> None:
        if name == 'cuda' and not torch.cuda.is_available():
            raise RuntimeError('--device cuda: torch sees no CUDA device')
        self.name, self.amp, self.channels_last = name, amp, channels_last

    def put(self, tensor_or_module):
        moved = tensor_or_module.to(self.name)
        if self.channels_last:
            moved = moved.to(memory_format=torch.channels_last)
        return moved

    def sync(self) -> None:
        if self.name == 'cuda':
            torch.cuda.synchronize()

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        dtype = torch.float16 if self.name == 'cuda' else torch.bfloat16
        return torch.autocast(self.name, dtype=dtype)


def device_of(args) -> Device:
    return Device(args.device, args.amp, args.channels_last)


def median_times(fns: dict, repeats: int, warmup: int,
                 device: Device = Device()) -> dict:
    """Median wall time of each ``fn()`` over ``repeats`` rounds after
    ``warmup`` rounds. The functions take turns within each round, so that
    a slow spell of a shared machine weighs on all of them alike; each is
    timed from and to an idle device."""
    times = {name: [] for name in fns}
    for round_ in range(warmup + repeats):
        for name, fn in fns.items():
            device.sync()
            start = time.perf_counter()
            fn()
            device.sync()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def feature_loss(feats) -> torch.Tensor:
    """Stands in for the task heads: a loss that reaches every level."""
    return sum(f.float().square().mean() for f in feats)


def build_r50_expansion(device: Device = Device()):
    """The expanded backbone + reconciliation neck of expansion_r50.py, with
    reconciliation on, as an XLearner (its task heads are not used), on
    ``device``."""
    from mmengine.config import Config

    from xlearner_mm.registry import MODELS
    from xlearner_mm.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(R50_CONFIG)
    model = device.put(MODELS.build(cfg.model))
    model.reconcile = True
    model.train()
    return model


def r50_inputs(model, batch_size: int, size: int,
               device: Device = Device()):
    torch.manual_seed(0)
    return {
        task: device.put(torch.randn(batch_size, 3, size, size))
        for task in model.tasks
    }


def expansion_step(model, inputs, device: Device = Device()) -> None:
    """What XLearner.train_step does with the backbone: every task's F^t
    (own stream with autograd, the others under no_grad, reconciliation),
    then one backward of the summed losses."""
    with device.autocast():
        loss = sum(
            feature_loss(model.extract_task_feat(x, task))
            for task, x in inputs.items())
    loss.backward()
    model.zero_grad(set_to_none=True)


def single_r50_step(model, images, device: Device = Device()) -> None:
    """One plain ResNet-50 forward+backward: the unit of the ratios."""
    with device.autocast():
        loss = feature_loss(model(images))
    loss.backward()
    model.zero_grad(set_to_none=True)


def build_single_r50(device: Device = Device()):
    from mmdet.models.backbones import ResNet
    model = device.put(ResNet(depth=50, out_indices=(0, 1, 2, 3)))
    model.train()
    return model


def measure_expansion_overhead(args) -> dict:
    device = device_of(args)
    model = build_r50_expansion(device)
    inputs = r50_inputs(model, args.batch_size, args.image_size, device)
    streams = model.backbone.streams

    def own_stream(task):
        def step():
            with device.autocast():
                loss = feature_loss(streams[task](inputs[task]))
            loss.backward()
            streams[task].zero_grad(set_to_none=True)
        return step

    def other_stream(task):
        def step():
            with torch.no_grad(), device.autocast():
                for other in model.tasks:
                    if other != task:
                        streams[other](inputs[task])
        return step

    fns = dict(step=lambda: expansion_step(model, inputs, device))
    for task in model.tasks:
        fns[f'{task}.own_fwd_bwd'] = own_stream(task)
        fns[f'{task}.others_fwd'] = other_stream(task)
    times = median_times(fns, args.repeats, args.warmup, device)
    step = times.pop('step')
    ideal = times
    return dict(
        expansion_overhead=step / sum(ideal.values()),
        raw=dict(step_s=step, **{k + '_s': v for k, v in ideal.items()}))


class RssSampler:
    """Samples this process's resident memory every millisecond in a thread
    (``ru_maxrss`` is a lifetime maximum that imports may already hold)."""

    def __init__(self):
        import threading
        self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def memory_probe(kind: str, args) -> None:
    """Child process of ``memory_ratio``: prints the peak memory added by
    building the model and running ``kind``'s step three times: resident
    memory on the CPU, CUDA's peak allocation on a GPU."""
    device = device_of(args)

    def run():
        if kind == 'expansion':
            model = build_r50_expansion(device)
            inputs = r50_inputs(model, args.batch_size, args.image_size,
                                device)
            for _ in range(3):
                expansion_step(model, inputs, device)
        else:
            model = build_single_r50(device)
            x = device.put(
                torch.randn(args.batch_size, 3, args.image_size,
                            args.image_size))
            for _ in range(3):
                single_r50_step(model, x, device)

    if device.name == 'cuda':
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        base = RssSampler.rss()
        with RssSampler() as sampler:
            run()
        peak = sampler.peak - base
    print(json.dumps(dict(peak_bytes=peak)))


def measure_memory_ratio(args) -> dict:
    peaks = {}
    for kind in ('expansion', 'single'):
        out = subprocess.run(
            [sys.executable, __file__, '--memory-probe', kind,
             '--batch-size', str(args.batch_size),
             '--image-size', str(args.image_size),
             '--device', args.device,
             *(['--amp'] if args.amp else []),
             *(['--channels-last'] if args.channels_last else [])],
            check=True, capture_output=True, text=True).stdout
        peaks[kind] = json.loads(out.strip().splitlines()[-1])['peak_bytes']
    return dict(
        memory_ratio=peaks['expansion'] / peaks['single'],
        raw={f'{k}_peak_mib': v / 2**20 for k, v in peaks.items()})


def _demo_cfg(work_dir: str, max_iters: int, num_workers: int):
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.work_dir = work_dir
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters + 1
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = max_iters + 1
    cfg.default_hooks.checkpoint.save_last = False
    for hook in cfg.custom_hooks:
        if hook.type == 'ReconciliationSwitchHook':
            hook.tau = 0
    for loader in cfg.train_dataloader.values():
        loader.num_workers = num_workers
        loader.persistent_workers = num_workers > 0
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    return cfg


class _IterRecorder:
    """An mmengine hook (built below) that keeps, per iteration, the
    data/iteration times IterTimerHook put in the message hub."""

    def __new__(cls):
        from mmengine.hooks import Hook

        class IterRecorder(Hook):
            priority = 'LOWEST'

            def __init__(self):
                self.data_time, self.time = [], []

            def after_train_iter(self, runner, batch_idx, data_batch=None,
                                 outputs=None):
                hub = runner.message_hub
                self.data_time.append(hub.get_scalar('train/data_time').current())
                self.time.append(hub.get_scalar('train/time').current())

        return IterRecorder()


class InMemoryBatches(list):
    """Loaded batches standing in for a task's dataloader: the loop iterates
    them, the Runner's hooks read ``dataset`` (metainfo, consistency
    checks)."""

    def __init__(self, batches, dataset):
        super().__init__(batches)
        self.dataset = dataset


class _InterleavedBareSteps:
    """An mmengine hook (built below) that, after each Runner iteration,
    runs the same model step in a bare PyTorch loop on the same batches, so
    that the two take turns. The Runner's iteration is timed from the end of
    one bare step to the end of the next Runner iteration (hooks included)."""

    def __new__(cls, bare_step):
        from mmengine.hooks import Hook

        class InterleavedBareSteps(Hook):
            priority = 'LOWEST'

            def __init__(self):
                self.runner_times, self.bare_times = [], []
                self._resumed = None

            def before_train_iter(self, runner, batch_idx, data_batch=None):
                if self._resumed is None:  # the first iteration starts here
                    self._resumed = time.perf_counter()

            def after_train_iter(self, runner, batch_idx, data_batch=None,
                                 outputs=None):
                end = time.perf_counter()
                self.runner_times.append(end - self._resumed)
                bare_step(runner.iter)
                self._resumed = time.perf_counter()
                self.bare_times.append(self._resumed - end)

        return InterleavedBareSteps()


def measure_runner_overhead(args) -> dict:
    from mmengine.runner import Runner

    # A demo step is short: three times the repeats, for a stable median.
    iters = args.warmup + 3 * args.repeats + 1
    cfg = _demo_cfg(osp.join(args.work_dir, 'runner_overhead'), iters, 0)
    runner = Runner.from_cfg(cfg)
    # The batches of every iteration, loaded once; both loops get them.
    loaders = runner.train_loop.dataloaders
    # (SourceMixSampler, the demo's sampler, is infinite.)
    batches = {
        task: list(itertools.islice(loader, iters))
        for task, loader in loaders.items()
    }
    runner.train_loop.dataloader.dataloaders = {
        task: InMemoryBatches(batches[task], loaders[task].dataset)
        for task in loaders
    }
    model = runner.model

    def bare_step(i):
        # The Runner's own optimizer (built in runner.train(), with the
        # per-parameter groups of paramwise_cfg), so that only the Runner,
        # the loop and the hooks differ.
        optimizer = runner.optim_wrapper.optimizer
        data = model.data_preprocessor(
            {t: b[i] for t, b in batches.items()}, True)
        losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    timer = _InterleavedBareSteps(bare_step)
    runner.register_hook(timer)
    runner.train()
    runner_step = statistics.median(timer.runner_times[args.warmup:])
    bare = statistics.median(timer.bare_times[args.warmup:])
    return dict(
        runner_overhead=runner_step / bare,
        raw=dict(runner_step_s=runner_step, bare_step_s=bare))


def measure_data_wait(args) -> dict:
    from mmengine.runner import Runner

    iters = 5 + args.data_iters
    cfg = _demo_cfg(osp.join(args.work_dir, 'data_wait'), iters, 2)
    runner = Runner.from_cfg(cfg)
    recorder = _IterRecorder()
    runner.register_hook(recorder)
    runner.train()
    # The first iterations wait for the workers to start.
    data_time = sum(recorder.data_time[5:])
    total = sum(recorder.time[5:])
    return dict(
        data_wait=data_time / total,
        raw=dict(data_time_s=data_time, iter_time_s=total,
                 iterations=len(recorder.time) - 5))


def measure_squeeze_overhead(args) -> dict:
    from mmengine.config import Config

    from xlearner_mm.registry import MODELS
    from xlearner_mm.utils import atomic_torch_save

    device = device_of(args)
    # A teacher checkpoint of the expansion_r50 model (its weights do not
    # matter for the timing).
    teacher = build_r50_expansion()
    checkpoint = osp.join(args.work_dir, 'squeeze_overhead_teacher.pth')
    atomic_torch_save({'state_dict': teacher.state_dict(), 'meta': {}},
                      checkpoint)
    cfg = Config.fromfile(SQUEEZE_CONFIG)
    cfg.model.teacher_checkpoint = checkpoint
    model = device.put(MODELS.build(cfg.model))
    model.train()
    inputs = r50_inputs(teacher, args.batch_size, args.image_size, device)
    del teacher

    def squeeze_step():
        with device.autocast():
            loss = sum(model.loss(inputs).values())
        loss.backward()
        model.zero_grad(set_to_none=True)

    def teacher_forward():
        with torch.no_grad(), device.autocast():
            for task, x in inputs.items():
                model.teacher.extract_task_feat(x, task)

    def student_forward_backward():
        for x in inputs.values():
            with device.autocast():
                loss = feature_loss(model.extract_feat(x)[-1:])
            loss.backward()
        model.zero_grad(set_to_none=True)

    times = median_times(
        dict(step=squeeze_step, teacher=teacher_forward,
             student=student_forward_backward), args.repeats, args.warmup,
        device)
    step, teacher_s, student_s = (
        times['step'], times['teacher'], times['student'])
    return dict(
        squeeze_overhead=step / (teacher_s + student_s),
        raw=dict(step_s=step, teacher_fwd_s=teacher_s,
                 student_fwd_bwd_s=student_s))


def measure_throughput_ratio(args) -> dict:
    device = device_of(args)
    expansion = build_r50_expansion(device)
    inputs = r50_inputs(expansion, args.batch_size, args.image_size, device)
    single = build_single_r50(device)
    images = next(iter(inputs.values()))
    times = median_times(
        dict(expansion=lambda: expansion_step(expansion, inputs, device),
             single=lambda: single_r50_step(single, images, device)),
        args.repeats, args.warmup, device)
    expansion_ips = len(inputs) * args.batch_size / times['expansion']
    single_ips = args.batch_size / times['single']
    return dict(
        throughput_ratio=expansion_ips / single_ips,
        expansion_images_per_s=expansion_ips,
        single_r50_images_per_s=single_ips,
        raw=dict(expansion_step_s=times['expansion'],
                 single_step_s=times['single']))


MEASURES = dict(
    expansion_overhead=measure_expansion_overhead,
    runner_overhead=measure_runner_overhead,
    squeeze_overhead=measure_squeeze_overhead,
    memory_ratio=measure_memory_ratio,
    data_wait=measure_data_wait,
    throughput_ratio=measure_throughput_ratio)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', nargs='+', choices=FIGURES, default=FIGURES)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--batch-size', type=int, default=2,
                        help='images per task in the ResNet-50 measurements')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--data-iters', type=int, default=30,
                        help='demo iterations timed for data_wait')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu',
                        help='where the ResNet-50 figures run '
                        f'({", ".join(DEVICE_FIGURES)})')
    parser.add_argument('--amp', action='store_true',
                        help='forward passes under autocast (float16 on '
                        'CUDA, bfloat16 on the CPU)')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels-last images and weights')
    parser.add_argument('--work-dir', default='work_dirs/benchmark')
    parser.add_argument('--verbose', action='store_true')
    parser.add_argument('--memory-probe', choices=('expansion', 'single'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device != 'cpu' and not args.memory_probe:
        off_device = sorted(set(args.only) - set(DEVICE_FIGURES))
        if off_device:
            parser.error(f'--device {args.device} measures '
                         f'{list(DEVICE_FIGURES)}; {off_device} run on the '
                         'CPU only')
    return args


def main():
    args = parse_args()
    import xlearner_mm  # noqa: F401
    if args.memory_probe:
        memory_probe(args.memory_probe, args)
        return
    os.chdir(REPO_ROOT)  # the demo configs name data/demo relative to it
    where = (torch.cuda.get_device_name() if args.device == 'cuda' else
             f'CPU, {torch.get_num_threads()} threads')
    print(f'# torch {torch.__version__}, {where}, batch {args.batch_size} x '
          f'{args.image_size}^2 per task, amp {args.amp}, channels_last '
          f'{args.channels_last}, median of {args.repeats} after '
          f'{args.warmup} warm-up')
    for name in args.only:
        result = MEASURES[name](args)
        for key, value in result.items():
            if key != 'raw':
                print(f'{key}: {value:.3f}', flush=True)
        if args.verbose:
            print('  ' + ', '.join(f'{k}={v:.4g}' if isinstance(v, float)
                                   else f'{k}={v}'
                                   for k, v in result['raw'].items()))


if __name__ == '__main__':
    main()
