"""The demo behind ``make demo``: X-Learner's whole pipeline on the generated
demo data, each stage with the repository's own tools, then a summary.

1. Expansion Stage: ``configs/demo/expansion_demo.py`` (cls + det + seg,
   tau switch included);
2. Squeeze Stage: ``configs/demo/squeeze_demo.py``, a ResNet-50 student
   distilled from the expansion checkpoint;
3. export: ``tools/export_backbone.py`` writes the student as a plain
   ResNet-50 checkpoint;
4. downstream: mmdet's stock Faster R-CNN and mmseg's stock DeepLabV3 configs
   load the export through ``init_cfg`` and train one iteration each on demo
   data (``configs/demo/*_export_demo.py``);
5. linear probe (``tools/linear_probe.py``) of the export on the demo
   classification sources.

    python tools/make_demo_data.py --out data/demo
    python tools/run_demo.py --work-dir work_dirs/demo
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--expansion-iters', type=int,
        help='override train_cfg.max_iters of the expansion demo (tau, the '
        'switch to joint training, moves to a third of it, as in the demo)')
    parser.add_argument(
        '--squeeze-iters', type=int,
        help='override train_cfg.max_iters of the squeeze demo')
    parser.add_argument(
        '--amp', action='store_true',
        help='train the expansion and squeeze demos with mixed precision '
        '(float16 on a GPU, bfloat16 on the CPU)')
    return parser.parse_args()


def run_stage(name: str, args: list, log_path: str) -> float:
    """Run ``python <args>`` from the repository root, teeing its output to
    ``log_path``; returns the wall time. A failing stage ends the demo with
    its name and log."""
    print(f'\n=== {name}: {" ".join(args)}', flush=True)
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    start = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            progress = re.search(
                r'Iter\(train\) \[\s*(\d+)/(\d+)\].*?\sloss: ([\d.]+)', line)
            if progress:
                print('  iteration {}/{}: loss {}'.format(*progress.groups()),
                      flush=True)
            elif 'Error' in line:
                print('  ' + line.rstrip(), flush=True)
        returncode = proc.wait()
    if returncode:
        sys.exit(f'demo stage "{name}" failed (exit code {returncode}); '
                 f'its output is in {log_path}')
    return time.time() - start


def train_records(work_dir: str) -> list:
    """Training records of the newest run under ``work_dir``
    (mmengine's LocalVisBackend scalars.json)."""
    paths = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')),
        key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f'no scalars.json under {work_dir}')
    with open(paths[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def first_last(records: list, key: str) -> tuple:
    values = [(r['iter'], r[key]) for r in records if key in r and 'iter' in r]
    return values[0], values[-1]


def checkpoint_of(work_dir: str) -> str:
    """The checkpoint a stage saved last, relative to the repository root
    when it lies below it (mmengine writes it absolute)."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        path = f.read().strip()
    relative = osp.relpath(path, REPO_ROOT)
    return path if relative.startswith('..') else relative


def main():
    args = parse_args()
    root = args.work_dir
    dirs = {stage: osp.join(root, stage) for stage in (
        'expansion', 'squeeze', 'export', 'faster_rcnn', 'deeplabv3',
        'linear_probe')}
    export = osp.join(dirs['export'], 'xlearner_r50.pth')
    times = {}

    amp = ['--amp'] if args.amp else []
    # custom_hooks.1 is the demo's ReconciliationSwitchHook; tau must stay
    # below max_iters.
    expansion_opts = ([
        '--cfg-options', f'train_cfg.max_iters={args.expansion_iters}',
        f'custom_hooks.1.tau={args.expansion_iters // 3}'
    ] if args.expansion_iters else [])
    times['expansion'] = run_stage(
        'Expansion Stage',
        ['tools/train.py', 'configs/demo/expansion_demo.py', '--work-dir',
         dirs['expansion'], *amp, *expansion_opts],
        osp.join(dirs['expansion'], 'stdout.log'))
    expansion_ckpt = checkpoint_of(dirs['expansion'])

    squeeze_opts = [f'model.teacher_checkpoint={expansion_ckpt}']
    if args.squeeze_iters:
        squeeze_opts.append(f'train_cfg.max_iters={args.squeeze_iters}')
    times['squeeze'] = run_stage(
        'Squeeze Stage',
        ['tools/train.py', 'configs/demo/squeeze_demo.py', '--work-dir',
         dirs['squeeze'], *amp, '--cfg-options', *squeeze_opts],
        osp.join(dirs['squeeze'], 'stdout.log'))
    squeeze_ckpt = checkpoint_of(dirs['squeeze'])

    times['export'] = run_stage(
        'Export', ['tools/export_backbone.py', squeeze_ckpt, export],
        osp.join(dirs['export'], 'stdout.log'))

    for stage, config in (
            ('faster_rcnn', 'configs/demo/faster-rcnn_r50_fpn_export_demo.py'),
            ('deeplabv3', 'configs/demo/deeplabv3_r50b_export_demo.py')):
        log_path = osp.join(dirs[stage], 'stdout.log')
        times[stage] = run_stage(
            f'Downstream {stage}',
            ['tools/train.py', config, '--work-dir', dirs[stage],
             '--cfg-options', f'model.backbone.init_cfg.checkpoint={export}'],
            log_path)
        with open(log_path) as f:
            text = f.read()
        # mmengine loads Pretrained weights non-strictly and only reports
        # unmatched keys: the export must have loaded without any.
        if (f'load model from: {export}' not in text
                or 'do not match exactly' in text):
            sys.exit(f'{stage}: the export was not loaded cleanly, see '
                     f'{log_path}')

    probe_json = osp.join(dirs['linear_probe'], 'results.json')
    times['linear_probe'] = run_stage(
        'Linear probe',
        ['tools/linear_probe.py', 'configs/linear_probe/demo.py', export,
         '--work-dir', dirs['linear_probe'], '--out', probe_json],
        osp.join(dirs['linear_probe'], 'stdout.log'))

    print('\n=== X-Learner demo: summary ===')
    print(f'{"stage":<14} {"time":>7}  result')
    records = train_records(dirs['expansion'])
    tasks = [k[:-len('.task_loss')] for k in records[0]
             if k.endswith('.task_loss')]
    changes = []
    for task in tasks:
        (i0, a), (i1, b) = first_last(records, f'{task}.task_loss')
        changes.append(f'{task} {a:.3f}->{b:.3f}')
    print(f'{"expansion":<14} {times["expansion"]:>6.0f}s  task loss iter '
          f'{i0}->{i1}: {", ".join(changes)}; {expansion_ckpt}')
    (i0, a), (i1, b) = first_last(train_records(dirs['squeeze']), 'loss')
    print(f'{"squeeze":<14} {times["squeeze"]:>6.0f}s  hint loss iter '
          f'{i0}->{i1}: {a:.2f}->{b:.2f}; {squeeze_ckpt}')
    print(f'{"export":<14} {times["export"]:>6.0f}s  {export}')
    for stage in ('faster_rcnn', 'deeplabv3'):
        record = train_records(dirs[stage])[-1]
        print(f'{stage:<14} {times[stage]:>6.0f}s  stock config, export '
              f'loaded, 1 iteration: loss {record["loss"]:.3f}')
    with open(probe_json) as f:
        probe = json.load(f)
    # Each demo test split has a handful of images (one image moves top-1
    # by 100/num_test points), so the line gives the test size and chance.
    tops = ', '.join(
        f'{name} {r["top1"]:.1f} ({r["num_test"]} test images, chance '
        f'{100 / r["num_classes"]:.1f})'
        for name, r in probe['datasets'].items())
    print(f'{"linear_probe":<14} {times["linear_probe"]:>6.0f}s  top-1 '
          f'{tops}; average {probe["average_top1"]:.1f} (a workflow check '
          'on tiny splits, not an accuracy measurement)')
    print(f'total {sum(times.values()):.0f}s')


if __name__ == '__main__':
    main()
