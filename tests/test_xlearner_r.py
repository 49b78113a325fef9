"""X-Learner_r (Squeeze-Expansion, paper Sec. 3.4): HalfResNet, the sizes of
its recipe's models, and the whole chain (one-task teachers, HalfResNet
students, final Expansion, export) run by tools/run_recipe.py on the demo
data."""
import glob
import os.path as osp
import time

import pytest
from _tools import load_tool
import torch

from xlearner_mm.apis import count_params, recipe_stages
from xlearner_mm.registry import MODELS
from xlearner_mm.structures import read_checkpoint
from xlearner_mm.utils import register_all_modules

register_all_modules()

RESNET50_PARAMS = 23_508_032
HALF_RESNET50_PARAMS = 11_802_384


def numel(module):
    return sum(p.numel() for p in module.parameters())


def test_half_resnet50_widths_and_size():
    """Every width of ResNet-50 / sqrt(2), to the nearest multiple of 8:
    stem 45.25 -> 48; stages 45.25, 90.51, 181.02, 362.04 -> 48, 88, 184,
    360; 50.2% of ResNet-50's parameters."""
    with torch.device('meta'):
        half = MODELS.build(dict(type='HalfResNet', depth=50))
        full = MODELS.build(dict(type='mmdet.ResNet', depth=50))
        outs = half(torch.zeros(1, 3, 64, 64))
    assert half.stage_widths == (48, 88, 184, 360)
    assert half.conv1.out_channels == 48
    assert [o.shape[1] for o in outs] == [192, 352, 736, 1440]
    assert half.feat_dim == 1440
    assert (numel(half), numel(full)) == (HALF_RESNET50_PARAMS,
                                          RESNET50_PARAMS)
    assert 0.49 < numel(half) / numel(full) < 0.51
    demo = MODELS.build(dict(type='HalfResNet', depth=18, base_channels=16))
    assert demo.stage_widths == (8, 24, 48, 88)


def test_recipe_sizes():
    """The final model, two HalfResNet-50 streams and their reconciliation
    layers, has about one ResNet-50's parameters (26.54 M, 113%); the
    students are HalfResNet-50s, the teachers ResNet-50s."""
    rows = {(r.stage, r.part): r.params
            for r in count_params('configs/xlearner/xlearner_r_r50.py')}
    assert [s['name'] for s in recipe_stages(
        'configs/xlearner/xlearner_r_r50.py')[0]] == [
            'teacher_cls', 'teacher_det', 'squeeze_cls', 'squeeze_det',
            'expansion']
    for task in ('cls', 'det'):
        assert rows[(f'teacher_{task}', f'stream {task} (ResNet)')] == \
            RESNET50_PARAMS
        assert rows[(f'squeeze_{task}', 'student (HalfResNet), the export')] \
            == HALF_RESNET50_PARAMS
        assert rows[('expansion', f'stream {task} (HalfResNet)')] == \
            HALF_RESNET50_PARAMS
    final = rows[('expansion', 'export: expanded backbone + reconciliation')]
    assert final == 26_542_720
    assert 1.0 < final / RESNET50_PARAMS < 1.15


@pytest.mark.slow
def test_demo_chain_runs_end_to_end(demo_data, tmp_path):
    """tools/run_recipe.py on configs/demo/xlearner_r_demo.py: every stage
    trains and hands its checkpoint on; the final streams start from the
    students; the export is a whole expanded model; a second run skips the
    finished stages."""
    # One torch thread: on a shared CPU, idle OpenMP threads spin (the
    # final stage took 17 s per iteration with two, 0.7 s with one).
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        argv = ['configs/demo/xlearner_r_demo.py', '--work-dir',
                str(tmp_path)]
        result = load_tool('run_recipe').main(argv)
        checkpoints = result['checkpoints']
        assert list(checkpoints) == [
            'teacher_cls', 'teacher_det', 'squeeze_cls', 'squeeze_det',
            'expansion']
        assert all(osp.isfile(c) for c in checkpoints.values())
        for task in ('cls', 'det'):
            student = read_checkpoint(checkpoints[f'squeeze_{task}'])
            final = read_checkpoint(checkpoints['expansion'])
            # 4 iterations of warm-up lr (at most 8e-3) move the weights
            # little from the student's: each stream started there.
            key = 'layer4.1.conv2.weight'
            start = student['state_dict'][f'student.{key}']
            end = final['state_dict'][f'backbone.streams.{task}.{key}']
            assert (end - start).norm() < 0.1 * start.norm()
            assert student['meta']['task_layout']['tasks'] == [task]
        backbone = MODELS.build(dict(
            type='PretrainedExpandedBackbone', checkpoint=result['export'],
            task='cls'))
        assert backbone.out_channels == (8, 24, 48, 88)
        assert backbone.tasks == ('cls', 'det')

        start = time.time()
        again = load_tool('run_recipe').main(argv)
        assert again['checkpoints'] == checkpoints
        assert time.time() - start < 30  # nothing trained again
        assert len(glob.glob(str(tmp_path / '*' / 'iter_*.pth'))) == 5
    finally:
        torch.set_num_threads(num_threads)
