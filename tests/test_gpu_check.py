"""The parts of the GPU check (tools/gpu_check.sh, tools/benchmark.py
--device) that run without a GPU: the plan of the check, and the device
options of the benchmark on the CPU."""
import os
import re
import shlex
import subprocess
import sys
from unittest import mock

import pytest
from _tools import REPO_ROOT, load_tool


def dry_run() -> str:
    proc = subprocess.run(
        ['bash', 'tools/gpu_check.sh', '--dry-run'], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def planned(output: str, script: str) -> list:
    """The arguments of the planned ``python <script>`` command."""
    line, = [line[2:] for line in output.splitlines()
             if line.startswith('+ ') and f' {script} ' in line]
    words = shlex.split(line)
    return words[words.index(script) + 1:]


def test_dry_run_plans_the_four_steps():
    output = dry_run()
    # 1. mmcv with CUDA ops for the local architecture only.
    assert re.search(r'^\+ env TORCH_CUDA_ARCH_LIST=<sm> MMCV_WITH_OPS=1 '
                     r'FORCE_CUDA=1 ', output, re.M), output
    assert 'mmcv-2.1.0-torch-<torch>-cuda-<cuda>-sm<sm>' in output
    # 2. The demo with float16 AMP, 20 + 10 iterations; the arguments are
    # those run_demo.py takes.
    demo = planned(output, 'tools/run_demo.py')
    with mock.patch.object(sys, 'argv', ['run_demo.py', *demo]):
        args = load_tool('run_demo').parse_args()
    assert (args.amp, args.expansion_iters, args.squeeze_iters) == (
        True, 20, 10)
    # 3. The GPU figures.
    bench = planned(output, 'tools/benchmark.py')
    with mock.patch.object(sys, 'argv', ['benchmark.py', *bench]):
        args = load_tool('benchmark').parse_args()
    assert (args.device, args.amp, args.channels_last, args.batch_size) == (
        'cuda', True, True, 64)
    assert set(args.only) == {'expansion_overhead', 'squeeze_overhead',
                              'memory_ratio', 'throughput_ratio'}
    # 4. The base recipe rehearsed at its real sizes.
    rehearsal = load_tool('rehearse').parse_args(
        planned(output, 'tools/rehearse.py'))
    assert rehearsal.config == 'configs/xlearner/recipes/xlearner_r50.py'
    assert (rehearsal.img_scale, rehearsal.amp,
            rehearsal.no_downstream) == (1, True, True)


def test_benchmark_refuses_cpu_figures_on_a_gpu():
    with mock.patch.object(sys, 'argv', [
            'benchmark.py', '--device', 'cuda', '--only', 'data_wait']):
        with pytest.raises(SystemExit):
            load_tool('benchmark').parse_args()


@pytest.mark.slow
def test_benchmark_device_options_on_the_cpu():
    """The figures the GPU check prints, with its AMP and channels-last
    options, on the CPU at a tiny size (bfloat16 autocast)."""
    proc = subprocess.run(
        [sys.executable, 'tools/benchmark.py', '--device', 'cpu', '--amp',
         '--channels-last', '--batch-size', '1', '--image-size', '64',
         '--repeats', '1', '--warmup', '0', '--only', 'expansion_overhead',
         'throughput_ratio'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = dict(re.findall(r'^(\w+): ([\d.]+)$', proc.stdout, re.M))
    assert set(figures) == {'expansion_overhead', 'throughput_ratio',
                            'expansion_images_per_s',
                            'single_r50_images_per_s'}
    # Two tasks' images per Expansion step against one task's per step.
    assert float(figures['throughput_ratio']) == pytest.approx(
        float(figures['expansion_images_per_s']) /
        float(figures['single_r50_images_per_s']), rel=1e-2)
    assert 'amp True, channels_last True' in proc.stdout
