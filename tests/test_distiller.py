"""MultiTaskDistiller, the Squeeze Stage (paper Sec. 3.3): a tiny expanded
teacher (XLearner of tiny ResNet streams, saved as an mmengine checkpoint in
tmp_path) distilled into a tiny student, and a real Runner on the demo data
through configs/demo/squeeze_demo.py."""
import copy
import itertools
import os.path as osp

import pytest
from _tools import isolate_run
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

import xlearner_mm  # noqa: F401  (checkpoint allow-list for resuming)
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

register_all_modules()

SQUEEZE_DEMO = 'configs/demo/squeeze_demo.py'
# Teacher streams: levels of 8, 16, 32, 64 channels at strides 4..32.
TINY_STREAM = dict(
    type='mmdet.ResNet', depth=18, base_channels=8, num_stages=4,
    out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), style='pytorch')
# Student: 4, 8, 16, 32 channels at the same strides.
TINY_STUDENT = dict(TINY_STREAM, base_channels=4)


def teacher_cfg(tasks=('a', 'b', 'c'), base_channels=8) -> dict:
    """An XLearner whose tasks are tiny classifiers (real mmpretrain models
    with their own data preprocessors)."""
    classifier = dict(
        type='mmpretrain.ImageClassifier',
        _scope_='mmpretrain',
        data_preprocessor=dict(
            type='ClsDataPreprocessor', mean=[128.] * 3, std=[64.] * 3),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3,
                  in_channels=8 * base_channels))
    return dict(
        type='XLearner',
        backbone=dict(type='ExpandedBackbone',
                      backbone=dict(TINY_STREAM, base_channels=base_channels)),
        neck=dict(type='ReconciliationNeck', groups=4),
        task_models={task: copy.deepcopy(classifier) for task in tasks})


def save_teacher(cfg: dict, path) -> str:
    """Build an expanded model and save it as mmengine's CheckpointHook
    does, with non-trivial reconciliation weights."""
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=9)), path)
    return str(path)


@pytest.fixture
def teacher_ckpt(tmp_path):
    return save_teacher(teacher_cfg(), tmp_path / 'expansion.pth')


def build(teacher_ckpt, teacher=None, **kwargs):
    return MODELS.build(dict(
        type='MultiTaskDistiller', teacher=teacher or teacher_cfg(),
        teacher_checkpoint=teacher_ckpt, student=TINY_STUDENT, **kwargs))


def images(tasks=('a', 'b', 'c'), n=4, size=32) -> dict:
    """A training batch per task as the dataloaders give it; no labels."""
    gen = torch.Generator().manual_seed(1)
    return {
        task: dict(inputs=[
            torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                          generator=gen) for _ in range(n)
        ])
        for task in tasks
    }


def test_guidance_layer_per_task_on_the_last_level(teacher_ckpt):
    model = build(teacher_ckpt)
    assert model.hint_levels == dict(a=(3, ), b=(3, ), c=(3, ))
    assert sorted(model.guidance) == ['a', 'b', 'c']
    for task in 'abc':
        assert list(model.guidance[task]) == ['3']
        layer = model.guidance[task]['3']
        assert type(layer).__name__ == 'GuidanceLayer'
        assert (layer.in_channels, layer.out_channels) == (32, 64)
    # The checkpoint layout: the student and the guidance layers, never the
    # teacher (reloaded from teacher_checkpoint).
    keys = list(model.state_dict())
    assert {k.split('.')[0] for k in keys} == {'student', 'guidance'}
    assert 'student.conv1.weight' in keys
    assert 'student.layer4.1.bn2.running_var' in keys
    assert 'guidance.b.3.proj.conv.weight' in keys
    assert 'guidance.b.3.proj.bn.running_mean' in keys

    data = model.data_preprocessor(images(), True)
    losses = model(**data, mode='loss')
    # Eq. (3): each task's images carry every task's hint.
    assert sorted(losses) == sorted(
        f'{t}.hint_loss' + ('' if t == k else f'_on_{k}')
        for t in 'abc' for k in 'abc')
    loss, log_vars = model.parse_losses(losses)
    assert loss.item() == pytest.approx(sum(v.item() for v in losses.values()))
    assert list(log_vars)[0] == 'loss'
    feats = model(**data, mode='tensor')
    assert [f.shape[1] for f in feats['a']] == [4, 8, 16, 32]
    with pytest.raises(RuntimeError, match='has no task heads'):
        model(**data, mode='predict')


def test_all_levels_with_weights(teacher_ckpt):
    weights = (1.0, 0.5, 0.25, 2.0)
    model = build(teacher_ckpt, hint_levels=(0, 1, 2, -1),
                  level_weights=weights, hint_images='own')
    assert model.hint_levels == {t: (0, 1, 2, 3) for t in 'abc'}
    for task in 'abc':
        shapes = [(model.guidance[task][str(i)].in_channels,
                   model.guidance[task][str(i)].out_channels)
                  for i in range(4)]
        assert shapes == [(4, 8), (8, 16), (16, 32), (32, 64)]
    data = model.data_preprocessor(images(), True)
    # The weights scale each level's hint (same BN batch statistics: eval).
    model.eval()
    weighted = model(**data, mode='loss')
    unweighted = build(teacher_ckpt, hint_levels=(0, 1, 2, 3),
                       hint_images='own')
    unweighted.load_state_dict(model.state_dict())
    unweighted.eval()
    plain = unweighted(**data, mode='loss')
    assert sorted(weighted) == sorted(
        f'{t}.level{i}.hint_loss' for t in 'abc' for i in range(4))
    for task, (level, weight) in itertools.product('abc', enumerate(weights)):
        key = f'{task}.level{level}.hint_loss'
        assert weighted[key].item() == pytest.approx(weight * plain[key].item())

    with pytest.raises(ValueError, match='one weight per level'):
        build(teacher_ckpt, hint_levels=(2, 3), level_weights=(1.0, ))
    with pytest.raises(ValueError, match='level 4 is out of the 4 levels'):
        build(teacher_ckpt, hint_levels=(4, ))


def test_every_image_carries_every_tasks_hint(teacher_ckpt):
    """Eq. (3) sums the T hints of one image: a batch of task a's images
    alone gives task b's and c's hints too, each the guided student feature
    against that task's teacher feature F^t on the same images, and its
    gradient reaches the student and that task's guidance layer."""
    model = build(teacher_ckpt).eval()
    data = model.data_preprocessor(images(('a', )), True)
    x = data['inputs']['a']
    losses = model(**data, mode='loss')
    assert sorted(losses) == [
        'a.hint_loss', 'b.hint_loss_on_a', 'c.hint_loss_on_a'
    ]
    student = model.student(x)[-1]
    for task in 'bc':
        want = torch.mean((model.guidance[task]['3'](student) -
                           model.teacher.extract_task_feat(x, task)[-1])**2)
        assert losses[f'{task}.hint_loss_on_a'].item() == pytest.approx(
            want.item(), rel=1e-5)
    losses['b.hint_loss_on_a'].backward()
    assert model.student.conv1.weight.grad.abs().sum() > 0
    assert model.guidance.b['3'].proj.conv.weight.grad.abs().sum() > 0
    assert model.guidance.a['3'].proj.conv.weight.grad is None

    own = build(teacher_ckpt, hint_images='own').eval()
    own.load_state_dict(model.state_dict())
    kept = own(**data, mode='loss')
    assert list(kept) == ['a.hint_loss']
    assert kept['a.hint_loss'].item() == pytest.approx(
        losses['a.hint_loss'].item())
    with pytest.raises(ValueError, match=r"hint_images must be one of "
                       r"\('all', 'own'\), got 'none'"):
        build(teacher_ckpt, hint_images='none')


def test_hint_levels_and_weights_per_task(teacher_ckpt):
    model = build(teacher_ckpt,
                  hint_levels=dict(a=(-1, ), b=(0, 1, 2, 3), c=(1, 3)),
                  level_weights=dict(b=(1, 1, 1, 2)))
    assert model.hint_levels == dict(a=(3, ), b=(0, 1, 2, 3), c=(1, 3))
    assert model.level_weights == dict(a=(1.0, ), b=(1.0, 1.0, 1.0, 2.0),
                                       c=(1.0, 1.0))
    assert {t: sorted(model.guidance[t]) for t in 'abc'} == dict(
        a=['3'], b=['0', '1', '2', '3'], c=['1', '3'])
    data = model.data_preprocessor(images(('c', )), True)
    assert sorted(model(**data, mode='loss')) == sorted(
        ['a.hint_loss_on_c'] +
        [f'b.level{i}.hint_loss_on_c' for i in range(4)] +
        ['c.level1.hint_loss', 'c.level3.hint_loss'])
    with pytest.raises(ValueError, match=r"names the tasks \['a', 'b'\], "
                       r"the teacher has \['a', 'b', 'c'\]"):
        build(teacher_ckpt, hint_levels=dict(a=(3, ), b=(3, )))
    with pytest.raises(ValueError, match="of task 'b' needs one weight per level"):
        build(teacher_ckpt, hint_levels=dict(a=(3, ), b=(2, 3), c=(3, )),
              level_weights=dict(b=(1.0, )))


def test_loss_goes_down_and_teacher_stays_frozen(teacher_ckpt):
    torch.manual_seed(0)
    model = build(teacher_ckpt)
    model.init_weights()
    model.train()
    assert model.student.training and model.guidance.training
    assert not any(m.training for m in model.teacher.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}

    # The teacher is held out of the module tree: the Runner's optimizer,
    # DDP and the checkpoints never see it.
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert teacher_params
    assert not teacher_params & {id(p) for p in model.parameters()}
    assert not any(k.startswith('teacher.') for k in model.state_dict())
    optim_wrapper = OptimWrapper(torch.optim.SGD(
        model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-4))
    batch = images()
    losses = [model.train_step(batch, optim_wrapper)['loss'].item()
              for _ in range(8)]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.8 * losses[0], losses

    assert not any(m.training for m in model.teacher.modules())
    after = model.teacher.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key  # BN statistics too


def test_init_weights_initialises_the_student_not_the_teacher(
        teacher_ckpt, tmp_path):
    pretrained = MODELS.build(TINY_STUDENT)
    for p in pretrained.parameters():
        torch.nn.init.uniform_(p.data, 0.5, 1.0)
    torch.save(dict(state_dict=pretrained.state_dict()), tmp_path / 'r.pth')
    model = MODELS.build(dict(
        type='MultiTaskDistiller', teacher=teacher_cfg(),
        teacher_checkpoint=teacher_ckpt,
        student=dict(TINY_STUDENT, init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'r.pth')))))
    saved = torch.load(teacher_ckpt)['state_dict']
    model.init_weights()
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, saved[key]), key
    for key, value in model.student.state_dict().items():
        assert torch.equal(value, pretrained.state_dict()[key]), key


def test_squeeze_state_dict_loads_back_without_the_teacher(teacher_ckpt):
    model = build(teacher_ckpt)
    state = model.state_dict()
    other = build(teacher_ckpt)
    torch.nn.init.constant_(other.student.conv1.weight, 3.0)
    assert not torch.equal(other.student.conv1.weight,
                           state['student.conv1.weight'])
    teacher_before = copy.deepcopy(other.teacher.state_dict())
    assert str(other.load_state_dict(state, strict=True)) == (
        '<All keys matched successfully>')
    assert torch.equal(other.student.conv1.weight,
                       state['student.conv1.weight'])
    for key, value in other.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


def test_checkpoint_with_other_tasks_is_rejected(tmp_path):
    path = save_teacher(teacher_cfg(('a', 'b')), tmp_path / 'ab.pth')
    with pytest.raises(ValueError) as error:
        build(path, teacher=teacher_cfg(('a', 'b', 'c')))
    assert (f"task 'c' is in the teacher config but not in checkpoint {path}"
            in str(error.value))
    with pytest.raises(ValueError, match=r"task 'b' is in checkpoint .*ab\.pth"
                       r' but not in the teacher config'):
        build(path, teacher=teacher_cfg(('a', )))


def test_checkpoint_with_other_channels_is_rejected(tmp_path):
    path = save_teacher(teacher_cfg(base_channels=16), tmp_path / 'wide.pth')
    with pytest.raises(ValueError) as error:
        build(path)
    message = str(error.value)
    assert 'wide.pth does not match the teacher config' in message
    assert ('backbone.streams.a.conv1.weight: checkpoint (16, 3, 7, 7) vs '
            'config (8, 3, 7, 7)') in message
    assert 'more' in message  # the rest are counted, not listed


def test_missing_checkpoint_is_named(tmp_path):
    path = str(tmp_path / 'nowhere' / 'iter_120.pth')
    with pytest.raises(FileNotFoundError, match='model.teacher_checkpoint: '
                       f'{path} does not exist'):
        build(path)
    with pytest.raises(ValueError, match='model.teacher_checkpoint is not set'):
        build(None)


def test_sum_reduction_is_eq3_and_weighs_tasks_by_feature_size(teacher_ckpt):
    """'sum' is Eq. (3)'s squared norm per sample (over C, H, W), averaged
    over the batch: the 'mean' loss times C*H*W of the task's feature. With
    images of another size per task, the tasks weigh differently under
    'sum' and alike under 'mean'."""
    model = build(teacher_ckpt).eval()
    summed = build(teacher_ckpt, reduction='sum').eval()
    summed.load_state_dict(model.state_dict())
    batch = images()
    batch['b'] = images(('b', ), size=64)['b']
    data = model.data_preprocessor(batch, True)
    mean, total = model(**data, mode='loss'), summed(**data, mode='loss')
    for task, side in (('a', 1), ('b', 2), ('c', 1)):  # last level: 64 ch
        elements = 64 * side * side
        assert total[f'{task}.hint_loss'].item() == pytest.approx(
            elements * mean[f'{task}.hint_loss'].item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"model.reduction must be one of "
                       r"\('mean', 'sum'\)"):
        build(teacher_ckpt, reduction='max')


def test_student_of_other_strides_is_rejected(teacher_ckpt):
    with pytest.raises(ValueError, match="Level 3: the student has stride 16 "
                       "but teacher stream 'a' has stride 32"):
        MODELS.build(dict(
            type='MultiTaskDistiller', teacher=teacher_cfg(),
            teacher_checkpoint=teacher_ckpt,
            student=dict(TINY_STUDENT, strides=(1, 2, 2, 1))))


# ---------------------------------------------------------------- Runner


class LossRecorder(Hook):
    """The raw log_vars of every training iteration, by 1-based number."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.log_vars = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.log_vars[runner.iter + 1] = {
            key: value.item() for key, value in outputs.items()
        }


def squeeze_cfg(work_dir, teacher_ckpt, max_iters) -> Config:
    """configs/demo/squeeze_demo.py for a short CPU run: the tiny student,
    half the batch sizes, no dataloader workers, checkpoints every 2
    iterations."""
    cfg = Config.fromfile(SQUEEZE_DEMO)
    isolate_run(cfg, work_dir, 'squeeze')
    cfg.model.teacher_checkpoint = teacher_ckpt
    cfg.model.student = TINY_STUDENT
    for loader in cfg.train_dataloader.values():
        loader.batch_size = loader.sampler.batch_size = loader.batch_size // 2
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.train_cfg.max_iters = max_iters
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 2
    cfg.randomness = dict(seed=0)
    return cfg


def train(cfg):
    runner = Runner.from_cfg(cfg)
    recorder = LossRecorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


@pytest.mark.slow
def test_squeeze_demo_trains_and_resumes(demo_data, tmp_path):
    """A: 3 iterations. B: A's iter_2.pth resumed to 3, with the same loss
    (same data, random states, optimizer and scheduler; same teacher)."""
    demo_teacher = Config.fromfile(SQUEEZE_DEMO).model.teacher
    teacher_ckpt = save_teacher(demo_teacher, tmp_path / 'expansion.pth')
    runner_a, rec_a = train(squeeze_cfg(tmp_path / 'a', teacher_ckpt, 3))
    assert sorted(rec_a.log_vars) == [1, 2, 3]
    for record in rec_a.log_vars.values():
        hints = {k: v for k, v in record.items() if 'hint_loss' in k}
        assert set(hints) == {
            f'{t}.hint_loss' + ('' if t == k else f'_on_{k}')
            for t in ('cls', 'det', 'seg') for k in ('cls', 'det', 'seg')
        }
        assert record['loss'] == pytest.approx(sum(hints.values()))
    with open(osp.join(runner_a.log_dir, f'{runner_a.timestamp}.log')) as f:
        log = f.read()
    assert 'det.hint_loss: ' in log and 'Iter(train) [3/3]' in log

    checkpoint = torch.load(tmp_path / 'a' / 'iter_2.pth')
    assert {k.split('.')[0] for k in checkpoint['state_dict']} == {
        'student', 'guidance'}
    assert 'guidance.seg.3.proj.conv.weight' in checkpoint['state_dict']

    cfg_b = squeeze_cfg(tmp_path / 'b', teacher_ckpt, 3)
    cfg_b.resume = True
    cfg_b.load_from = str(tmp_path / 'a' / 'iter_2.pth')
    runner_b, rec_b = train(cfg_b)
    assert sorted(rec_b.log_vars) == [3]
    for key, value in rec_a.log_vars[3].items():
        if 'loss' in key:
            assert rec_b.log_vars[3][key] == pytest.approx(value, abs=1e-5), key
    # The resumed teacher is still the one of teacher_checkpoint.
    saved = torch.load(teacher_ckpt)['state_dict']
    for key, value in runner_b.model.teacher.state_dict().items():
        assert torch.equal(value, saved[key]), key
