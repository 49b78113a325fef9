"""TaskLayout, the one home of the tasks, sources, heads, streams and
checkpoint prefixes of a model, and read_checkpoint, the one checkpoint
reader: built from the demo XLearner, saved in and read back from checkpoint
meta, asked by the loss (Eq. 1), the squeeze teacher and the checks."""
import copy

import pytest
import torch
from mmengine.config import Config

import xlearner_mm  # noqa: F401  (checkpoint allow-list)
from xlearner_mm.models import XLearner
from xlearner_mm.models.distillers import ExpansionTeacher
from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout, read_checkpoint
from xlearner_mm.utils import register_all_modules
from xlearner_mm.utils.checkpoint_file import CheckpointFileError

register_all_modules()

EXPANSION_DEMO = 'configs/demo/expansion_demo.py'
TINY_STUDENT = dict(
    type='mmdet.ResNet', depth=18, base_channels=16, num_stages=4,
    out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), style='pytorch')


@pytest.fixture(scope='module')
def model_cfg():
    return Config.fromfile(EXPANSION_DEMO).model


@pytest.fixture(scope='module')
def model(model_cfg) -> XLearner:
    torch.manual_seed(0)
    return MODELS.build(model_cfg)


@pytest.fixture(scope='module')
def checkpoint(model, tmp_path_factory) -> str:
    """The demo model saved with its layout, as a training run saves it."""
    path = tmp_path_factory.mktemp('expansion') / 'iter_4.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(iter=4, task_layout=model.layout.to_dict())),
               path)
    return str(path)


def test_layout_of_the_demo_model(model):
    layout = model.layout
    assert layout.stage == 'expansion'
    assert layout.tasks == ('cls', 'det', 'seg')
    assert layout.sources == dict(cls=('folder_cls', 'annfile_cls'),
                                  det=('coco_a', 'coco_b'), seg=('ade', ))
    assert layout.num_sources == 5
    assert layout.per_source == dict(cls=True, det=True, seg=True)
    # Class counts of every source's head, RoI sub-heads included, under
    # the config keys that set them.
    key = 'model.task_models.det.roi_head.heads.coco_b.bbox_head.num_classes'
    assert layout.classes['det']['coco_b'] == {key: 2}
    assert layout.stream_prefix('det') == 'backbone.streams.det.'
    assert layout.stream_config('det')['depth'] == 18
    assert 'init_cfg' not in layout.stream_config('det')
    assert layout.neck['type'] == 'ReconciliationNeck'
    # The prefixes are those of the model's own state dict.
    keys = model.state_dict()
    assert any(k.startswith(layout.stream_prefix('seg')) for k in keys)
    assert any(k.startswith(TaskLayout.RECONCILERS + 'det.') for k in keys)
    assert any(k.startswith(TaskLayout.TASK_MODELS + 'cls.') for k in keys)


def test_layout_round_trips_through_checkpoint_meta(model, tmp_path):
    path = tmp_path / 'meta.pth'
    torch.save(dict(meta=dict(task_layout=model.layout.to_dict())), path)
    # Plain python values: stock torch reads them with weights_only=True.
    meta = torch.load(path, weights_only=True)['meta']
    assert TaskLayout.from_meta(meta) == model.layout
    assert TaskLayout.from_meta({}) is None


def test_losses_are_weighted_by_the_layout(model):
    """Eq. (1): a per-source loss counts 1 / N_t in its task's loss, a loss
    the task's sources share counts once; the heads name source losses the
    way the layout reads them."""
    layout = model.layout
    name = 'det.' + TaskLayout.source_loss_name('coco_a', 'loss_cls')
    assert layout.loss_owner(name) == ('det', 'coco_a')
    assert layout.loss_weight(name) == 0.5
    assert layout.loss_owner('det.loss_rpn_cls') == ('det', None)
    assert layout.loss_weight('det.loss_rpn_cls') == 1.0
    # A task of one source owns all its losses.
    assert layout.loss_owner('seg.decode.ade.loss_ce') == ('seg', 'ade')
    assert layout.loss_weight('seg.decode.ade.loss_ce') == 1.0
    loss, log_vars = model.parse_losses({
        'cls.folder_cls.loss': torch.tensor(2.),
        'cls.annfile_cls.loss': torch.tensor(4.),
        'det.coco_a.loss_cls': torch.tensor(1.),
        'det.loss_rpn_cls': torch.tensor(3.),
        'seg.decode.ade.loss_ce': torch.tensor(5.)})
    assert log_vars['cls.task_loss'] == 3.0  # (2 + 4) / 2
    assert log_vars['det.task_loss'] == 3.5  # 1 / 2 + 3
    # (1/N) sum_t N_t l_t with N = 5
    assert loss == pytest.approx((2 * 3.0 + 2 * 3.5 + 5.0) / 5)


def test_differences_name_tasks_sources_and_reconciliation(model):
    layout = model.layout
    other = TaskLayout(tasks=('cls', 'det'), neck=None)
    assert layout.differences(other, 'A', 'B') == [
        "tasks: ['cls', 'det', 'seg'] in A, ['cls', 'det'] in B",
        'reconciliation: a neck in A, none in B']
    renamed = copy.deepcopy(layout)
    renamed.sources['det'] = ('coco_a', 'lvis')
    assert layout.differences(renamed, 'A', 'B') == [
        "sources of task 'det': ['coco_a', 'coco_b'] in A, "
        "['coco_a', 'lvis'] in B"]
    assert layout.differences(renamed, 'A', 'B', sources=False) == []


def test_streams_of_a_hard_sharing_layout(model):
    """The stream names, and the prefixes of the export, the zoo init and
    the checks, come from the layout: one stream per task, or one shared
    stream (ExpandedBackbone shared=True) for all tasks."""
    assert model.layout.streams == ('cls', 'det', 'seg')
    assert model.layout.tasks_on('det') == ('det', )
    shared = copy.deepcopy(model.layout)
    shared.backbone = dict(shared.backbone, shared=True,
                           stream_overrides=dict(shared=dict(depth=34)))
    assert shared.streams == ('shared', )
    assert shared.stream_of('det') == TaskLayout.SHARED_STREAM == 'shared'
    assert shared.tasks_on('shared') == ('cls', 'det', 'seg')
    assert shared.stream_prefix('cls') == 'backbone.streams.shared.'
    assert shared.stream_config('seg')['depth'] == 34
    with pytest.raises(KeyError, match='No task "depth"'):
        shared.stream_of('depth')
    assert model.layout.differences(shared, 'A', 'B') == [
        "streams: ['cls', 'det', 'seg'] in A, ['shared'] in B"]
    saved = TaskLayout.from_meta(dict(task_layout=shared.to_dict()))
    assert saved.streams == ('shared', )


def test_stage_and_tasks_from_keys(model):
    keys = dict.fromkeys(model.state_dict())
    assert TaskLayout.stage_of(keys, 'x.pth') == 'expansion'
    assert TaskLayout.stream_tasks(keys) == ['cls', 'det', 'seg']
    legacy = TaskLayout.from_state_dict(keys, 'x.pth')
    assert legacy.tasks == ('cls', 'det', 'seg') and legacy.sources is None
    squeeze = {'student.conv1.weight': 0, 'guidance.cls.3.conv.weight': 0}
    assert TaskLayout.from_state_dict(squeeze, 'y.pth').stage == 'squeeze'
    with pytest.raises(ValueError, match=r"stage of z.pth.*\['head'\]"):
        TaskLayout.stage_of({'head.fc.weight': 0}, 'z.pth')


def test_read_checkpoint(tmp_path):
    weights = {'module.conv.weight': torch.ones(2)}
    bare = tmp_path / 'bare.pth'
    torch.save(weights, bare)
    read = read_checkpoint(str(bare), 'init_cfg.checkpoint')
    assert read['meta'] == {} and list(read['state_dict']) == ['conv.weight']
    with pytest.raises(FileNotFoundError,
                       match='init_cfg.checkpoint: .*gone.pth does not exist'):
        read_checkpoint(str(tmp_path / 'gone.pth'), 'init_cfg.checkpoint')
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(bare.read_bytes()[:-100])
    with pytest.raises(CheckpointFileError, match='load_from'):
        read_checkpoint(str(truncated), 'load_from')


def test_squeeze_teacher_builds_what_it_runs(model, model_cfg, checkpoint):
    """Backbone, neck and data preprocessors only; the layout (sources
    included) is the one saved in the Expansion checkpoint."""
    teacher = ExpansionTeacher(model_cfg, checkpoint).eval()
    assert not hasattr(teacher, 'task_models')
    assert set(teacher.state_dict()) == set(
        TaskLayout.expansion_state(model.state_dict()))
    assert sum(p.numel() for p in teacher.parameters()) == sum(
        p.numel() for part in (model.backbone, model.neck)
        for p in part.parameters())
    assert teacher.layout == model.layout
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    model.reconcile = True
    with torch.no_grad():
        for got, want in zip(teacher.extract_task_feat(x, 'det'),
                             model.extract_task_feat(x, 'det')):
            torch.testing.assert_close(got, want)
    distiller = MODELS.build(dict(
        type='MultiTaskDistiller', teacher=model_cfg,
        teacher_checkpoint=checkpoint, student=TINY_STUDENT))
    assert distiller.layout.stage == 'squeeze'
    assert distiller.layout.sources == model.layout.sources
    assert distiller.layout.student['depth'] == 18
    # The task preprocessors are the distiller's own modules, so that
    # device moves (BaseModel.to sets each preprocessor's device) reach them.
    modules = list(distiller.modules())
    assert all(any(p is m for m in modules)
               for p in distiller.data_preprocessor.preprocessors.values())


def test_squeeze_teacher_refuses_a_checkpoint_of_another_layout(
        model, model_cfg, tmp_path):
    layout = copy.deepcopy(model.layout)
    layout.neck = None
    path = tmp_path / 'other.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(task_layout=layout.to_dict())), path)
    with pytest.raises(ValueError, match='reconciliation: none in checkpoint'):
        ExpansionTeacher(model_cfg, str(path))
    no_preprocessor = copy.deepcopy(model_cfg)
    del no_preprocessor.task_models.det.data_preprocessor
    with pytest.raises(ValueError, match='model.teacher.task_models.det.'
                       'data_preprocessor is not set'):
        ExpansionTeacher(no_preprocessor, str(path))
