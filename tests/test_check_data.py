"""tools/check_data.py and xlearner_mm.datasets.check_data: each training
source counted on disk (from its annotation files and folders) against the
train size its config states, on the demo data and on the paper's configs."""
import json

import pytest
from _tools import load_tool
from mmengine.config import Config

import xlearner_mm.datasets.data_check as data_check
from xlearner_mm.datasets import check_data, count_source
from xlearner_mm.utils import register_all_modules

register_all_modules(init_default_scope=False)

EXPANSION_DEMO = 'configs/demo/expansion_demo.py'


def test_demo_counts_match(demo_data):
    """Every kind of source: class folders, an annotation list, COCO json
    and mmseg image/label folders."""
    rows = check_data(Config.fromfile(EXPANSION_DEMO))
    assert [(r.task, r.source) for r in rows] == [
        ('cls', 'folder_cls'), ('cls', 'annfile_cls'), ('det', 'coco_a'),
        ('det', 'coco_b'), ('seg', 'ade')]
    assert all((r.expected, r.found, r.status) == (32, 32, 'ok')
               for r in rows)


def test_missing_and_short_sources_are_reported(demo_data, capsys,
                                                tmp_path):
    cfg = Config.fromfile(EXPANSION_DEMO)
    det = cfg.train_dataloader.det.dataset
    det.sources.coco_b.data_root = 'data/demo/no_such_source'
    det.expected_sizes.coco_a = 40
    cfg.train_dataloader.seg.dataset.expected_sizes = {}
    rows = {r.source: r for r in check_data(cfg)}
    assert rows['coco_b'].found is None
    assert rows['coco_b'].status.startswith(
        "MISSING data_root 'data/demo/no_such_source'")
    assert rows['coco_a'].status == 'SHORT by 8 (20.0%)'
    assert rows['ade'].status == 'no expected size stated'
    config = tmp_path / 'broken.py'
    cfg.dump(str(config))
    assert load_tool('check_data').main([str(config)]) == 1
    out = capsys.readouterr().out
    assert 'data missing for: coco_a, coco_b' in out


def test_json_images_counted_across_chunks(tmp_path, monkeypatch):
    """COCO-style files are counted in a stream: a key cut by a chunk
    boundary counts once."""
    ann = tmp_path / 'instances.json'
    ann.write_text(json.dumps(dict(
        images=[dict(id=i, file_name=f'{i}.jpg') for i in range(50)],
        annotations=[], categories=[])))
    for chunk in (7, 11, 1 << 20):
        monkeypatch.setattr(data_check, '_CHUNK', chunk)
        assert count_source(dict(
            type='mmdet.CocoDataset', data_root=str(tmp_path),
            ann_file='instances.json')) == 50


def test_paper_configs_state_their_sizes():
    """expansion_r50.py takes Table 1's sizes from the _base_ files; without
    data every source is reported missing."""
    rows = check_data(Config.fromfile('configs/xlearner/expansion_r50.py'))
    assert {r.source: r.expected for r in rows} == dict(
        imagenet=1_281_167, inat2021=2_686_843, places365=8_026_628,
        coco=118_287, objects365=608_606)
    assert all(r.status.startswith('MISSING') for r in rows)


def test_unknown_expected_source_is_refused(demo_data):
    cfg = Config.fromfile(EXPANSION_DEMO).train_dataloader.cls.dataset
    cfg.expected_sizes['imagenet'] = 1
    from xlearner_mm.datasets import MultiSourceDataset
    cfg.pop('type')
    with pytest.raises(ValueError, match=r"expected_sizes of task 'cls' "
                       r"names \['imagenet'\]"):
        MultiSourceDataset(**cfg)
