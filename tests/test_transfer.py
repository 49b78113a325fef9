"""The transfer suite (tools/transfer.py) on the demo data: every backbone
kind through the linear probe and the stock Faster R-CNN and DeepLabV3
fine-tunes with a 2-point learning-rate grid, the table, and a rerun after
the suite was killed midway."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
from _tools import REPO_ROOT, load_tool
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from xlearner_mm.apis import export_backbone
from xlearner_mm.datasets import HoldoutSplit
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

register_all_modules()

DEMO_SUITE = 'configs/transfer/demo.py'
DEMO_WIDTHS = [16, 32, 64, 128]
COCO_A_TRAIN = dict(
    type='mmdet.CocoDataset',
    data_root='data/demo/coco_a/',
    ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'),
    metainfo=dict(classes=('red_box', 'green_box', 'blue_box')),
    filter_cfg=dict(filter_empty_gt=True),
    pipeline=[])


@pytest.fixture(scope='module')
def backbones(tmp_path_factory):
    """The three kinds of backbone checkpoint: a plain export (a ResNet-50
    Squeeze student through tools/export_backbone.py's function), the same
    weights as an mmpretrain model-zoo checkpoint (``backbone.*`` keys and a
    classifier head), and a demo Expansion checkpoint, which
    PretrainedExpandedBackbone takes whole."""
    root = tmp_path_factory.mktemp('backbones')
    torch.manual_seed(0)
    expansion = MODELS.build(
        Config.fromfile('configs/demo/expansion_demo.py').model)
    expansion.init_weights()
    expanded = str(root / 'expansion_iter_1.pth')
    torch.save(dict(state_dict=expansion.state_dict(),
                    meta=dict(task_layout=expansion.layout.to_dict())),
               expanded)
    squeeze_cfg = Config.fromfile('configs/demo/squeeze_demo.py').model
    squeeze_cfg.teacher_checkpoint = expanded
    squeeze = MODELS.build(squeeze_cfg)
    squeeze.init_weights()
    squeeze_ckpt = str(root / 'squeeze_iter_1.pth')
    torch.save(dict(state_dict=squeeze.state_dict(),
                    meta=dict(task_layout=squeeze.layout.to_dict())),
               squeeze_ckpt)
    plain = str(root / 'xlearner_r50.pth')
    export_backbone(squeeze_ckpt, plain)
    zoo_state = {
        f'backbone.{k}': v
        for k, v in torch.load(plain)['state_dict'].items()
    }
    zoo_state.update({'head.fc.weight': torch.zeros(10, 2048),
                      'head.fc.bias': torch.zeros(10)})
    zoo = str(root / 'resnet50_zoo.pth')
    torch.save(dict(state_dict=zoo_state, meta=dict(epoch=100)), zoo)
    return dict(plain_export=plain, zoo=zoo, expanded=expanded)


def _suite_config(path, backbones, baseline, **finetune_options):
    """A suite config over the demo suite with these backbones."""
    lines = [
        f"_base_ = {osp.join(REPO_ROOT, DEMO_SUITE)!r}",
        f'backbones = dict(_delete_=True, **{backbones!r})',
        f'baseline = {baseline!r}',
    ]
    lines += [f'{key} = {value!r}' for key, value in finetune_options.items()]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def _kill_processes_naming(marker: str) -> None:
    """SIGKILL every process whose command line names ``marker``, and wait
    until they are gone: torchrun starts its workers in sessions of their
    own, so killing the suite's process group leaves them training."""
    def naming():
        pids = []
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    cmdline = f.read().decode(errors='replace')
                with open(f'/proc/{pid}/stat') as f:
                    zombie = f.read().rsplit(')', 1)[1].split()[0] == 'Z'
            except OSError:  # ended meanwhile
                continue
            if marker in cmdline and not zombie and int(pid) != os.getpid():
                pids.append(int(pid))
        return pids

    for pid in naming():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 60
    while naming():
        assert time.time() < deadline, f'processes {naming()} survived'
        time.sleep(0.1)


def _job_dirs(work_dir, backbone, benchmark):
    root = osp.join(work_dir, backbone, benchmark)
    return sorted(os.listdir(root))


def test_holdout_split_is_disjoint_and_whole(demo_data):
    """The two parts of a dataset: disjoint by image, together the whole;
    an image listed twice stays on one side and is held out once."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        whole = HoldoutSplit(COCO_A_TRAIN, 'train', 0.25).dataset
        parts = {
            part: HoldoutSplit(COCO_A_TRAIN, part, 0.25)
            for part in ('train', 'holdout')
        }
        twice = dict(type='ConcatDataset', datasets=[COCO_A_TRAIN] * 2)
        twice_parts = {
            part: HoldoutSplit(twice, part, 0.25)
            for part in ('train', 'holdout')
        }

    def names(dataset):
        return [
            osp.basename(dataset.get_data_info(i)['img_path'])
            for i in range(len(dataset))
        ]

    train, holdout = names(parts['train']), names(parts['holdout'])
    assert train and holdout and not set(train) & set(holdout)
    assert sorted(train + holdout) == sorted(names(whole))
    # coco_a's 32 training images: 14 hash into the held-out 25% (a hash
    # split is exact only on average).
    assert len(holdout) == 14
    assert parts['holdout'].metainfo == whole.metainfo
    assert osp.basename(parts['holdout'][0]['img_path']) == holdout[0]
    assert names(twice_parts['holdout']) == holdout
    assert sorted(names(twice_parts['train'])) == sorted(train * 2)
    with pytest.raises(ValueError, match='fraction'):
        HoldoutSplit(COCO_A_TRAIN, 'holdout', 1.5)


@pytest.mark.slow
@pytest.mark.current_torch
def test_whole_suite_on_every_backbone_kind(demo_data, backbones, tmp_path):
    """tools/transfer.py on the demo suite with a plain export (the
    baseline), a model-zoo checkpoint and an Expansion checkpoint: the probe
    and both fine-tunes over 2 learning rates, then the table."""
    work_dir = str(tmp_path / 'transfer')
    config = _suite_config(
        tmp_path / 'suite.py',
        {name: dict(checkpoint=path) for name, path in backbones.items()},
        'plain_export')
    result = load_tool('transfer').main([config, '--work-dir', work_dir])
    table = result['table']

    datasets = ['folder_cls', 'annfile_cls']
    assert sorted(table['columns']) == sorted(
        ['AVG Cls', *datasets, 'PASCAL Det', 'PASCAL Seg'])
    assert [row['method'] for row in table['rows']] == list(backbones)
    rows = {row['method']: row for row in table['rows']}
    base = rows['plain_export']['values']
    for row in rows.values():
        assert row['kind'] == 'measured'
        for column in table['columns']:
            value = row['values'][column]
            assert value is not None and 0 <= value <= 100
            assert row['gains'][column] == pytest.approx(value - base[column])
    # The zoo checkpoint holds the export's weights: ZooPretrained took its
    # backbone.* keys, so the probe saw the same features.
    for column in ['AVG Cls', *datasets]:
        assert rows['zoo']['values'][column] == base[column]
    assert rows['plain_export']['Delta_m'] == 0

    # Each benchmark: one search job per rate, one final job at the rate of
    # the best search score.
    for name in backbones:
        for benchmark in ('det', 'seg'):
            search = result['search'][name][benchmark]
            assert sorted(search['lrs']) == [0.005, 0.02]
            assert search['lr'] == max(search['lrs'], key=search['lrs'].get)
            assert _job_dirs(work_dir, name, benchmark) == [
                f'final_lr{search["lr"]}', 'search_lr0.005', 'search_lr0.02'
            ]
    for suffix in ('md', 'json', 'csv'):
        assert osp.isfile(result['files'][suffix])
    with open(result['files']['md']) as f:
        lines = f.read().strip().splitlines()
    assert len(lines) == 2 + len(backbones)

    # What each job trained: the search job on the training part with the
    # held-out part as validation; each backbone kind loaded its own way.
    search = Config.fromfile(
        osp.join(work_dir, 'expanded', 'det', 'search_lr0.005',
                 'transfer_job.py'))
    assert search.train_dataloader.dataset.type == 'xlearner_mm.HoldoutSplit'
    assert search.val_dataloader.dataset.part == 'holdout'
    assert search.model.backbone.type == 'xlearner_mm.PretrainedExpandedBackbone'
    assert search.model.neck.in_channels == DEMO_WIDTHS
    seg = Config.fromfile(
        osp.join(work_dir, 'expanded', 'seg',
                 f'final_lr{result["search"]["expanded"]["seg"]["lr"]}',
                 'transfer_job.py'))
    assert seg.val_dataloader.dataset.type == 'ADE20KDataset'
    assert seg.model.decode_head.in_channels == DEMO_WIDTHS[3]
    assert seg.model.backbone.task == 'seg'
    assert search.default_hooks.checkpoint.type == (
        'xlearner_mm.AtomicCheckpointHook')
    zoo = Config.fromfile(
        osp.join(work_dir, 'zoo', 'det', 'search_lr0.02', 'transfer_job.py'))
    assert zoo.model.backbone.init_cfg == dict(
        type='ZooPretrained', checkpoint=backbones['zoo'])

    # Another checkpoint under a finished backbone's name is refused.
    other = _suite_config(tmp_path / 'other.py',
                          dict(zoo=dict(checkpoint=backbones['plain_export'])),
                          'zoo')
    with pytest.raises(ValueError, match='holds the results of backbone'):
        load_tool('transfer').main([other, '--work-dir', work_dir])


@pytest.mark.slow
@pytest.mark.current_torch
def test_rerun_after_a_kill_skips_finished_jobs_and_resumes(
        demo_data, backbones, tmp_path):
    """The suite, run through tools/dist_train.sh, is killed while its
    second job trains; the same command then skips the first job, resumes
    the second from its checkpoint, and completes."""
    work_dir = str(tmp_path / 'transfer')
    finetunes = Config.fromfile(DEMO_SUITE).finetunes.to_dict()
    det = finetunes['det']
    det['cfg_options'] = {
        'train_cfg.max_iters': 8,
        'train_cfg.val_interval': 8,
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.checkpoint.save_last': True,
    }
    config = _suite_config(
        tmp_path / 'suite.py',
        dict(expanded=dict(checkpoint=backbones['expanded'])), 'expanded',
        probe=None, finetunes=dict(_delete_=True, det=det))
    command = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'transfer.py'), config, '--work-dir',
        work_dir, '--launcher', 'pytorch', '--gpus', '1'
    ]
    first = osp.join(work_dir, 'expanded', 'det', 'search_lr0.005')
    second = osp.join(work_dir, 'expanded', 'det', 'search_lr0.02')
    with open(tmp_path / 'first_run.log', 'w') as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.time() + 600
        while not osp.isfile(osp.join(second, 'last_checkpoint')):
            assert proc.poll() is None, (tmp_path / 'first_run.log').read_text()
            assert time.time() < deadline, 'the second job never saved'
            time.sleep(0.1)
        # The machine goes down: the suite and every job process with it.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _kill_processes_naming(str(tmp_path))
    assert osp.isfile(osp.join(first, 'final_metrics.json'))
    assert not osp.isfile(osp.join(second, 'final_metrics.json'))
    first_mtime = osp.getmtime(osp.join(first, 'final_metrics.json'))

    rerun = subprocess.run(command, cwd=REPO_ROOT, capture_output=True,
                           text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    log = rerun.stdout + rerun.stderr
    assert 'expanded det search lr=0.005 is done' in log
    assert 'expanded det search lr=0.02: resuming' in log
    assert osp.getmtime(osp.join(first, 'final_metrics.json')) == first_mtime
    # The resumed run of the second job logged only the iterations after
    # its checkpoint.
    runs = sorted(d for d in os.listdir(second)
                  if osp.isdir(osp.join(second, d, 'vis_data')))
    assert len(runs) == 2
    with open(osp.join(second, runs[1], 'vis_data', 'scalars.json')) as f:
        iters = [json.loads(line).get('iter') for line in f]
    assert 1 < min(i for i in iters if i is not None)
    with open(osp.join(second, 'final_metrics.json')) as f:
        metrics = json.load(f)
    assert metrics['iter'] == 8 and 'pascal_voc/mAP' in metrics['metrics']

    # A job stopped during its last validation resumes from the checkpoint
    # of its last iteration with nothing to train: FinalMetricsHook then
    # validates it (here in this process, launcher none).
    os.remove(osp.join(second, 'final_metrics.json'))
    load_tool('transfer').main([config, '--work-dir', work_dir])
    with open(osp.join(second, 'final_metrics.json')) as f:
        assert json.load(f) == metrics
    runs = sorted(d for d in os.listdir(second)
                  if osp.isdir(osp.join(second, d, 'vis_data')))
    with open(osp.join(second, runs[-1], 'vis_data', 'scalars.json')) as f:
        records = [json.loads(line) for line in f]
    assert records and not any('loss' in r for r in records)
    with open(osp.join(work_dir, 'transfer_results.json')) as f:
        table = json.load(f)
    assert [row['method'] for row in table['rows']] == ['expanded']
    assert table['rows'][0]['values']['PASCAL Det'] is not None
