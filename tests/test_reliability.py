"""Reliability (issue 4): checkpoints a crash cannot destroy, and bad input
that fails before training with an error naming the culprit.

The save interruption is real: a subprocess trains a toy model and is
SIGKILLed while it writes its second checkpoint; the test then resumes from
what is on disk. Toy model and dataset are registered here; the subprocess
imports this module to get them.
"""
import copy
import glob
import itertools
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import get_file_backend
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import xlearner_mm  # noqa: F401  (checkpoint allow-list for resuming)
from xlearner_mm.datasets import MultiSourceDataset
from xlearner_mm.engine import AtomicLocalBackend, check_data_model_consistency
from xlearner_mm.utils.compat import load_checkpoint
from xlearner_mm.registry import DATASETS, MODELS
from xlearner_mm.utils import register_all_modules

from test_distiller import save_teacher, teacher_cfg

register_all_modules()

TESTS_DIR = osp.dirname(osp.abspath(__file__))
DEMO_CFG = 'configs/demo/expansion_demo.py'
KILL_AT = 'iter_4.pth'  # the second checkpoint (interval 2)
_run_names = itertools.count()


@DATASETS.register_module(force=True)
class ToyRegressionDataset(torch.utils.data.Dataset):
    """``size`` fixed samples ``x -> 2x + 1``."""

    def __init__(self, size: int = 8) -> None:
        self.x = torch.linspace(-1, 1, size).unsqueeze(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: int) -> dict:
        return dict(inputs=self.x[idx], targets=2 * self.x[idx] + 1)


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=((out - torch.stack(targets))**2).mean())
        return out


def toy_cfg(work_dir, max_iters=6, **checkpoint) -> dict:
    """Plain mmengine iteration training of the toy model, checkpointed by
    the hook of configs/_base_/default_runtime.py every 2 iterations."""
    runtime = Config.fromfile('configs/_base_/default_runtime.py')
    return dict(
        default_scope='xlearner_mm',
        work_dir=str(work_dir),
        # Unique: mmengine shares the message hub of runs of one name.
        experiment_name=f'{osp.basename(str(work_dir))}_{next(_run_names)}',
        model=dict(type='ToyRegressor'),
        train_dataloader=dict(
            batch_size=2,
            num_workers=0,
            dataset=dict(type='ToyRegressionDataset'),
            sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(
                runtime.default_hooks.checkpoint,
                interval=2, **checkpoint)),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0))


def train_toy(work_dir, **kwargs) -> Runner:
    runner = Runner.from_cfg(Config(toy_cfg(work_dir, **kwargs)))
    runner.train()
    return runner


def _die_while_writing(work_dir: str) -> None:
    """Run in the subprocess: train the toy model and SIGKILL the process
    from inside the checkpoint write of ``KILL_AT``, after half of its
    bytes have reached the temporary file (the fsync before the rename is
    the last point before the file would appear under its final name)."""
    real_fsync = os.fsync

    def fsync_or_die(fd):
        name = osp.basename(os.readlink(f'/proc/self/fd/{fd}'))
        if name.startswith(f'.{KILL_AT}.'):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    os.fsync = fsync_or_die
    train_toy(work_dir)


@pytest.fixture
def fast_runner(monkeypatch):
    """One thread (2 loaded cores), no yapf formatting of dumped configs and
    no 2 s pause when a dataloader without workers restarts."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr('mmengine.config.config.FormatCode',
                        lambda text, **kwargs: (text, None))
    monkeypatch.setattr('mmengine.runner.loops.time.sleep', lambda _: None)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- checkpoints


def test_atomic_backend_replaces_whole_files_only(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    backend = get_file_backend(path, backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'old', path)
    umask = os.umask(0)
    os.umask(umask)
    # Readable like a file torch.save writes, not mkstemp's 0600.
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(TypeError):
        backend.put('not bytes', path)  # fails inside the write
    assert open(path, 'rb').read() == b'old'
    assert os.listdir(tmp_path) == ['ckpt.pth']  # no temporary file left
    backend.put_text('new', path)
    assert backend.get_text(path) == 'new'


def test_failed_save_removes_nothing(tmp_path, fast_runner, monkeypatch):
    """mmengine's CheckpointHook removes the outdated checkpoint before
    saving; here a save that fails keeps it and `last_checkpoint`."""
    saved = []
    real_save = Runner.save_checkpoint

    def save_or_fail(runner, out_dir, filename, *args, **kwargs):
        if filename == 'iter_4.pth':
            raise OSError('disk full')
        saved.append(filename)
        return real_save(runner, out_dir, filename, *args, **kwargs)

    monkeypatch.setattr(Runner, 'save_checkpoint', save_or_fail)
    with pytest.raises(OSError, match='disk full'):
        train_toy(tmp_path, max_keep_ckpts=1)
    assert saved == ['iter_2.pth']
    assert osp.isfile(tmp_path / 'iter_2.pth')
    assert open(tmp_path / 'last_checkpoint').read() == str(
        tmp_path / 'iter_2.pth')


def test_max_keep_ckpts_removes_after_saving(tmp_path, fast_runner):
    train_toy(tmp_path, max_iters=6, max_keep_ckpts=2)
    assert sorted(glob.glob(str(tmp_path / 'iter_*.pth'))) == [
        str(tmp_path / 'iter_4.pth'), str(tmp_path / 'iter_6.pth')]
    assert open(tmp_path / 'last_checkpoint').read() == str(
        tmp_path / 'iter_6.pth')


@pytest.mark.slow
def test_kill_while_saving_keeps_previous_checkpoint_and_resumes(
        tmp_path, fast_runner):
    killed_dir = tmp_path / 'killed'
    code = ('import sys; sys.path.insert(0, sys.argv[1]); '
            'import test_reliability as t; t._die_while_writing(sys.argv[2])')
    proc = subprocess.run(
        [sys.executable, '-c', code, TESTS_DIR, str(killed_dir)],
        cwd=osp.dirname(TESTS_DIR), capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]

    # The torn bytes are in a temporary file, never under the final name.
    assert not osp.exists(killed_dir / KILL_AT)
    torn, = glob.glob(str(killed_dir / f'.{KILL_AT}.*.tmp'))
    previous = str(killed_dir / 'iter_2.pth')
    assert open(killed_dir / 'last_checkpoint').read() == previous
    checkpoint = load_checkpoint(previous)
    assert checkpoint['meta']['iter'] == 2

    # --resume continues from iteration 2 and ends where an uninterrupted
    # run ends.
    resumed = Runner.from_cfg(Config(dict(toy_cfg(killed_dir), resume=True)))
    resumed.train()
    assert resumed.iter == 6
    assert not osp.exists(torn)  # cleaned up by the hook
    reference = train_toy(tmp_path / 'reference')
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)


# ------------------------------------------------------- corrupt input data


@pytest.fixture
def annfile_source(demo_data, tmp_path):
    """A copy of the demo's annfile_cls source whose first training image
    is an empty file, as a MultiSourceDataset source config."""
    root = tmp_path / 'annfile_cls'
    shutil.copytree(osp.join(demo_data, 'annfile_cls'), root)
    first = open(root / 'meta' / 'train.txt').readline().split()[0]
    bad = root / 'images' / first
    open(bad, 'wb').close()
    cfg = copy.deepcopy(Config.fromfile(DEMO_CFG).train_dataloader.cls.dataset)
    source = dict(cfg.sources.annfile_cls, data_root=str(root))
    return dict(pipeline=cfg.pipeline, sources=dict(annfile_cls=source)), \
        str(bad)


def test_corrupt_image_error_names_file_source_and_task(annfile_source):
    cfg, bad = annfile_source
    dataset = MultiSourceDataset(task='cls', **cfg)
    with pytest.raises(RuntimeError) as error:
        dataset[0]
    message = str(error.value)
    assert f"img_path='{bad}'" in message
    assert "source 'annfile_cls' of task 'cls'" in message
    assert dataset[1]['inputs'].shape == (3, 64, 64)  # the others load


def test_corrupt_image_skipped_and_counted(annfile_source):
    cfg, _ = annfile_source
    dataset = MultiSourceDataset(task='cls', skip_corrupt=True, **cfg)
    sample = dataset[0]
    # Replaced by the next sample of the same source.
    assert sample['data_samples'].img_path == dataset.datasets[0] \
        .get_data_info(1)['img_path']
    assert sample['data_samples'].source == 'annfile_cls'
    dataset[0]
    assert dataset.num_skipped == dict(annfile_cls=2)


# ------------------------------------------------------ data vs model config


@pytest.fixture(scope='module')
def demo():
    """The demo Expansion model and its training datasets (built once)."""
    cfg = Config.fromfile(DEMO_CFG)
    model = MODELS.build(cfg.model)
    datasets = {
        task: DATASETS.build(loader.dataset)
        for task, loader in cfg.train_dataloader.items()
    }
    return cfg, model, datasets


def test_demo_data_and_model_agree(demo_data, demo):
    _, model, datasets = demo
    check_data_model_consistency(model, datasets, 'train_dataloader', True)


def test_task_without_model_or_without_data(demo_data, demo):
    cfg, model, datasets = demo
    depth = MultiSourceDataset(task='depth', sources=dict(
        ade=cfg.train_dataloader.seg.dataset.sources.ade))
    with pytest.raises(ValueError) as error:
        check_data_model_consistency(model, dict(datasets, depth=depth),
                                     'train_dataloader', True)
    assert ("The tasks of train_dataloader ['cls', 'depth', 'det', 'seg'] "
            "and of model.task_models ['cls', 'det', 'seg'] differ: task "
            "'depth' has data but no model (no head)") in str(error.value)
    without_seg = {t: d for t, d in datasets.items() if t != 'seg'}
    with pytest.raises(ValueError,
                       match="task 'seg' has a model but no dataloader"):
        check_data_model_consistency(model, without_seg, 'train_dataloader',
                                     True)
    # Evaluating only some tasks is fine.
    check_data_model_consistency(model, without_seg, 'val_dataloader', False)


def test_source_without_head_or_head_without_source(demo_data, demo):
    cfg, model, datasets = demo
    det = cfg.train_dataloader.det.dataset
    extra = MultiSourceDataset(task='det', pipeline=det.pipeline, sources=dict(
        det.sources, coco_c=det.sources.coco_b))
    with pytest.raises(ValueError, match=r"train_dataloader\['det'\] \(task "
                       r"'det'\) \['coco_a', 'coco_b', 'coco_c'\] and the "
                       r"per-source heads of model.task_models.det \['coco_a',"
                       r" 'coco_b'\] differ: source 'coco_c' has no head"):
        check_data_model_consistency(model, dict(datasets, det=extra),
                                     'train_dataloader', True)
    only_a = MultiSourceDataset(task='det', pipeline=det.pipeline,
                                sources=dict(coco_a=det.sources.coco_a))
    with pytest.raises(ValueError, match="head 'coco_b' has no source"):
        check_data_model_consistency(model, dict(datasets, det=only_a),
                                     'train_dataloader', True)
    check_data_model_consistency(model, dict(val=only_a), 'val_dataloader',
                                 False)


@pytest.mark.parametrize('task, source, key', [
    ('det', 'coco_a', 'roi_head.heads.coco_a.bbox_head.num_classes'),
    ('cls', 'annfile_cls', 'head.heads.annfile_cls.num_classes'),
    ('seg', 'ade', 'decode_head.heads.ade.num_classes'),
])
def test_source_classes_must_match_head(demo_data, demo, task, source, key):
    cfg, _, datasets = demo
    model_cfg = copy.deepcopy(cfg.model)
    node = model_cfg.task_models[task]
    *parents, last = key.split('.')
    for part in parents:
        node = node[part]
    num_classes = node[last]
    node[last] = 5
    model = MODELS.build(model_cfg)
    with pytest.raises(ValueError) as error:
        check_data_model_consistency(model, datasets, 'train_dataloader', True)
    assert (f"Source '{source}' of task '{task}' has {num_classes} classes in "
            f"train_dataloader['{task}'] (task '{task}') but its head has "
            f'model.task_models.{task}.{key}=5; set model.task_models.{task}.'
            f'{key}={num_classes}') in str(error.value)


@pytest.mark.slow
def test_runner_stops_before_the_first_iteration(demo_data, tmp_path,
                                                 fast_runner):
    """Through tools/train.py's path: the demo config with coco_a's head at
    5 classes (its dataset has 3) fails in before_train."""
    cfg = Config.fromfile(DEMO_CFG)
    cfg.work_dir = str(tmp_path)
    cfg.model.task_models.det.roi_head.heads.coco_a.bbox_head.num_classes = 5
    for loader in cfg.train_dataloader.values():
        loader.update(num_workers=0, persistent_workers=False)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='bbox_head.num_classes=5; set '):
        runner.train()
    assert runner.iter == 0


# ------------------------------------------------- checkpoint vs model config


def _load(model_cfg, path, work_dir) -> Runner:
    """Load ``path`` as training does (``load_from``, no data) with the hooks
    of the default runtime."""
    runtime = Config.fromfile('configs/_base_/default_runtime.py')
    runner = Runner(
        model=model_cfg, work_dir=str(work_dir), default_scope='xlearner_mm',
        load_from=path, experiment_name=f'load_{next(_run_names)}',
        default_hooks=dict(checkpoint_check=runtime.default_hooks[
            'checkpoint_check']))
    runner.load_or_resume()
    return runner


def test_expansion_checkpoint_of_other_tasks_is_refused(tmp_path, fast_runner):
    path = save_teacher(teacher_cfg(('a', 'b', 'c')), tmp_path / 'abc.pth')
    _load(teacher_cfg(('a', 'b', 'c')), path, tmp_path)  # the same loads
    with pytest.raises(ValueError) as error:
        _load(teacher_cfg(('a', 'b')), path, tmp_path)
    assert (f"task 'c' is in checkpoint {path} but not in the config (model) "
            "(its tasks: ['a', 'b'])") in str(error.value)


def test_expansion_checkpoint_of_other_levels_is_refused(tmp_path,
                                                         fast_runner):
    path = save_teacher(teacher_cfg(('a', 'b')), tmp_path / 'ab.pth')
    three_levels = teacher_cfg(('a', 'b'))
    three_levels['backbone']['backbone']['out_indices'] = (0, 1, 2)
    with pytest.raises(ValueError) as error:
        _load(three_levels, path, tmp_path)
    message = str(error.value)
    assert message.startswith(f'Checkpoint {path} does not fit the expanded '
                              'backbone of the config')
    assert re.search(r'neck\.reconcilers\.a\.b\.0_3\.\S+: in the checkpoint but '
                     r'not in the config \(model\)', message), message
    # Other models (no expanded backbone) are not checked.
    _load(dict(type='ToyRegressor'), path, tmp_path)
