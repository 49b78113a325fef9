"""The demo behind ``make demo``: X-Learner's whole pipeline on the generated
demo data, each stage with the repository's own tools, then a summary.

1. Expansion Stage: ``configs/demo/expansion_demo.py`` (cls + det + seg,
   tau switch included);
2. Squeeze Stage: ``configs/demo/squeeze_demo.py``, a ResNet-50 student
   distilled from the expansion checkpoint;
3. export: ``tools/export_backbone.py`` writes the student as a plain
   ResNet-50 checkpoint;
4. Hard-sharing: ``configs/demo/hard_sharing_demo.py``, the baseline with
   one stream shared by the tasks;
5. pictures of the Expansion run: its loss curves
   (``tools/analyze_logs.py``) and its reconciliation layers
   (``tools/vis_reconciliation.py``);
6. transfer (``tools/transfer.py configs/transfer/demo.py``): X-Learner's
   export, the Hard-sharing checkpoint and a random-init ResNet-50 through
   the linear probe and mmdet's / mmseg's stock Faster R-CNN and DeepLabV3
   configs with a 2-point learning-rate search, ending in one table.

    python tools/make_demo_data.py --out data/demo
    python tools/run_demo.py --work-dir work_dirs/demo
"""
import argparse
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time

from xlearner_mm.structures import TaskLayout
from xlearner_mm.visualization import load_scalars

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
            elif 'transfer: ' in line:  # a transfer job starts or is done
                print('  ' + line.split('transfer: ', 1)[1].rstrip(),
                      flush=True)
            elif 'Error' in line:
                print('  ' + line.rstrip(), flush=True)
        returncode = proc.wait()
    if returncode:
        sys.exit(f'demo stage "{name}" failed (exit code {returncode}); '
                 f'its output is in {log_path}')
    return time.time() - start


def first_last(scalars: dict, key: str) -> tuple:
    """``((first step, value), (last step, value))`` of a logged value of
    :func:`load_scalars`."""
    steps, values = scalars[key]
    return (steps[0], values[0]), (steps[-1], values[-1])


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
        'expansion', 'squeeze', 'export', 'hard_sharing', 'pictures',
        'transfer')}
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

    times['hard_sharing'] = run_stage(
        'Hard-sharing',
        ['tools/train.py', 'configs/demo/hard_sharing_demo.py', '--work-dir',
         dirs['hard_sharing'], *amp],
        osp.join(dirs['hard_sharing'], 'stdout.log'))
    hard_sharing_ckpt = checkpoint_of(dirs['hard_sharing'])

    curves = osp.join(dirs['pictures'], 'loss_curves.png')
    heatmap = osp.join(dirs['pictures'], 'reconciliation_heatmap.png')
    times['pictures'] = run_stage(
        'Pictures', ['tools/analyze_logs.py', 'plot_curve', dirs['expansion'],
                     '--out', curves],
        osp.join(dirs['pictures'], 'stdout.log'))
    times['pictures'] += run_stage(
        'Pictures',
        ['tools/vis_reconciliation.py', 'configs/demo/expansion_demo.py',
         expansion_ckpt, '--img', 'data/demo/coco_a/val/0000.jpg', '--size',
         '128', '--out-dir', dirs['pictures']],
        osp.join(dirs['pictures'], 'stdout_reconciliation.log'))

    # The checkpoints are new: the jobs of an earlier demo are not theirs.
    shutil.rmtree(dirs['transfer'], ignore_errors=True)
    times['transfer'] = run_stage(
        'Transfer', ['tools/transfer.py', 'configs/transfer/demo.py',
                     '--work-dir', dirs['transfer'],
                     '--backbone', f'xlearner={export}',
                     '--backbone', f'hard_sharing={hard_sharing_ckpt}',
                     '--backbone', 'random_init=random'],
        osp.join(dirs['transfer'], 'stdout.log'))

    print('\n=== X-Learner demo: summary ===')
    print(f'{"stage":<14} {"time":>7}  result')
    scalars = load_scalars(dirs['expansion'])
    changes = []
    for key in scalars:
        task, *rest = TaskLayout.split_log_name(key) or (None, )
        if rest == [TaskLayout.TASK_LOSS]:
            (i0, a), (i1, b) = first_last(scalars, key)
            changes.append(f'{task} {a:.3f}->{b:.3f}')
    print(f'{"expansion":<14} {times["expansion"]:>6.0f}s  task loss iter '
          f'{i0}->{i1}: {", ".join(changes)}; {expansion_ckpt}')
    (i0, a), (i1, b) = first_last(load_scalars(dirs['squeeze']), 'loss')
    print(f'{"squeeze":<14} {times["squeeze"]:>6.0f}s  hint loss iter '
          f'{i0}->{i1}: {a:.2f}->{b:.2f}; {squeeze_ckpt}')
    print(f'{"export":<14} {times["export"]:>6.0f}s  {export}')
    (i0, a), (i1, b) = first_last(load_scalars(dirs['hard_sharing']),
                                  'loss')
    print(f'{"hard_sharing":<14} {times["hard_sharing"]:>6.0f}s  loss iter '
          f'{i0}->{i1}: {a:.3f}->{b:.3f}; {hard_sharing_ckpt}')
    print(f'{"pictures":<14} {times["pictures"]:>6.0f}s  {curves}, {heatmap}')
    print(f'{"transfer":<14} {times["transfer"]:>6.0f}s  '
          f'{osp.join(dirs["transfer"], "transfer_results.md")}')
    print(f'total {sum(times.values()):.0f}s')
    # Each demo split has a handful of images and each fine-tune trains 4
    # iterations: the table shows the workflow, not accuracy.
    with open(osp.join(dirs['transfer'], 'transfer_results.md')) as f:
        print('\n=== Transfer (a workflow check on tiny splits and '
              'schedules, not an accuracy measurement) ===\n' + f.read())


if __name__ == '__main__':
    main()
