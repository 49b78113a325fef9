"""tools/count_params.py and xlearner_mm.apis.count_params: the parameter
count of each stage's model, for every config under configs/xlearner/."""
import glob

import pytest
import torch
from _tools import load_tool
from mmengine.config import Config

from xlearner_mm.apis import count_params
from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

register_all_modules()

RESNET50_PARAMS = 23_508_032
XLEARNER_CONFIGS = sorted(glob.glob('configs/xlearner/*.py'))


def test_every_recipe_config_counts():
    """Every config builds (on the meta device, no checkpoint read), and
    each stage has its total and export."""
    assert len(XLEARNER_CONFIGS) >= 10
    for config in XLEARNER_CONFIGS:
        rows = count_params(config)
        stages = {r.stage for r in rows}
        for stage in stages:
            parts = [r.part for r in rows if r.stage == stage]
            assert any(p.startswith('total') for p in parts), config
            assert any('export' in p for p in parts), config
        assert all(r.params > 0 for r in rows), config


def test_expansion_figures_match_the_built_model():
    """expansion_r50.py: the figures of the README's size table, and the
    total of the model built on the CPU."""
    rows = {r.part: r.params
            for r in count_params('configs/xlearner/expansion_r50.py')}
    assert rows['stream cls (ResNet)'] == RESNET50_PARAMS
    assert rows['reconciliation into cls (4 layers)'] == 2_659_328
    assert rows['reconciliation into det (10 layers)'] == 3_159_552
    assert rows['export: expanded backbone + reconciliation'] == \
        2 * RESNET50_PARAMS + 2_659_328 + 3_159_552
    model = MODELS.build(Config.fromfile('configs/demo/expansion_demo.py').model)
    demo = {r.part: r.params
            for r in count_params('configs/demo/expansion_demo.py')}
    assert demo['total'] == sum(p.numel() for p in model.parameters())


def test_squeeze_pruning_and_hint_figures():
    squeeze = {r.part: r.params
               for r in count_params('configs/xlearner/squeeze_r50.py')}
    assert squeeze['student (ResNet), the export'] == RESNET50_PARAMS
    # 1x1 conv 2048 -> 2048 and its BN, one per task.
    assert squeeze['guidance layers of det'] == 2048 * 2048 + 2 * 2048
    pruned = {r.part: r.params
              for r in count_params('configs/xlearner/prune_r50.py')}
    # One ResNet-50's conv weights are kept; BN and biases are not pruned.
    assert pruned['pruned (X-Learner_p): nonzero in the export'] == 23_643_584
    plus = {r.part: r.params for r in count_params(
        'configs/xlearner/expansion_r50_plusplus.py')}
    # cls: level 3 (2048 -> 2048); det: levels 256 ... 2048, each + BN.
    assert plus['X-Learner++ guidance layers of det'] == sum(
        c * c + 2 * c for c in (256, 512, 1024, 2048))


def test_cli_prints_a_table(capsys):
    load_tool('count_params').main(['configs/xlearner/squeeze_r50.py'])
    out = capsys.readouterr().out
    assert 'student (ResNet), the export' in out and '23.51 M' in out
    assert '23,508,032' in out


def test_a_config_of_another_model_is_refused(tmp_path):
    config = tmp_path / 'plain.py'
    config.write_text("model = dict(type='mmdet.FasterRCNN')\n")
    with pytest.raises(ValueError, match='neither XLearner.*MultiTaskDistiller'):
        count_params(str(config))


@pytest.mark.parametrize(
    'config', [c for c in XLEARNER_CONFIGS if '/squeeze_' in c])
def test_squeezed_model_has_one_sub_backbone_size(config):
    """The student of every squeezing recipe has the parameters of one of
    its teacher's sub-backbones, within 1% (they are the same network)."""
    cfg = Config.fromfile(config)
    with torch.device('meta'):
        student = MODELS.build(cfg.model.student)
        stream = MODELS.build(cfg.model.teacher.backbone.backbone)
    ours, theirs = (sum(p.numel() for p in m.parameters())
                    for m in (student, stream))
    assert abs(ours - theirs) <= 0.01 * theirs, (config, ours, theirs)


def test_pruned_model_keeps_one_sub_backbone_size():
    """X-Learner_p keeps as many conv weights as one sub-backbone has; with
    the BN and bias parameters it is within 1% of one ResNet-50."""
    pruned = {r.part: r.params
              for r in count_params('configs/xlearner/prune_r50.py')}
    kept = pruned['pruned (X-Learner_p): nonzero in the export']
    assert abs(kept - RESNET50_PARAMS) <= 0.01 * RESNET50_PARAMS
