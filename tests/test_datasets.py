"""Tests of MultiSourceDataset, SourceMixSampler, tools/make_demo_data.py and
the dataset base configs, on demo data generated into a temporary folder."""
import copy
import filecmp
import glob
import itertools
import json
import os
import os.path as osp

import numpy as np
import pytest
from _tools import REPO_ROOT, load_tool
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import METRICS, DefaultScope
from PIL import Image
from torch.utils.data import DataLoader

import xlearner_mm.datasets.samplers.source_mix_sampler as \
    source_mix_sampler
from xlearner_mm.datasets import MultiSourceDataset, SourceMixSampler
from xlearner_mm.registry import DATA_SAMPLERS, DATASETS, TRANSFORMS
from xlearner_mm.utils import register_all_modules

DATASET_CFGS = osp.join(REPO_ROOT, 'configs', '_base_', 'datasets')
PAPER_SOURCES = dict(
    imagenet=('mmpretrain.ImageNet', 'mmpretrain.Accuracy', 1000),
    places365=('mmpretrain.CustomDataset', 'mmpretrain.Accuracy', 365),
    inat2021=('mmpretrain.CustomDataset', 'mmpretrain.Accuracy', 10000),
    compcars=('mmpretrain.CustomDataset', 'mmpretrain.Accuracy', 1716),
    tsinghua_dogs=('mmpretrain.CustomDataset', 'mmpretrain.Accuracy', 130),
    coco=('mmdet.CocoDataset', 'mmdet.CocoMetric', 80),
    objects365=('mmdet.Objects365V1Dataset', 'mmdet.CocoMetric', 365),
    wider_face=('mmdet.WIDERFaceDataset', 'mmdet.VOCMetric', 1),
    ade20k=('mmseg.ADE20KDataset', 'mmseg.IoUMetric', 150),
    coco_stuff=('mmseg.COCOStuffDataset', 'mmseg.IoUMetric', 171),
)
# Paper Table 1's train sizes. COCO-Stuff's 164k is its whole release, of
# which the 118k train images are labelled (README, "Data preparation").
TABLE1_SIZES = dict(
    imagenet=1.3e6, places365=8.0e6, inat2021=2.7e6, compcars=120e3,
    tsinghua_dogs=65e3, coco=118e3, objects365=609e3, wider_face=13e3,
    ade20k=20e3, coco_stuff=118e3)
TASK_SOURCES = dict(
    cls=['folder_cls', 'annfile_cls'], det=['coco_a', 'coco_b'], seg=['ade'])


make_demo_data = load_tool('make_demo_data')
register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def xlearner_scope():
    with DefaultScope.overwrite_default_scope('xlearner_mm'):
        yield


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    return make_demo_data.main(
        ['--out', str(tmp_path_factory.mktemp('demo') / 'demo')])


@pytest.fixture(scope='module')
def demo_cfg():
    return Config.fromfile(osp.join(DATASET_CFGS, 'demo.py'))


def demo_source(cfg, root, name, split):
    """The demo config of source ``name`` with its data under ``root``."""
    source = copy.deepcopy(cfg[f'demo_{name}_{split}'].to_dict())
    source['data_root'] = source['data_root'].replace(cfg.demo_data_root, root)
    return source


def build(cfg, root, task, split, names=None, pipeline=True, **kwargs):
    names = names or TASK_SOURCES[task]
    stage = 'train' if split == 'train' else 'test'
    return MultiSourceDataset(
        task=task,
        sources={n: demo_source(cfg, root, n, split)
                 for n in names},
        pipeline=cfg[f'{task}_{stage}_pipeline'] if pipeline else None,
        **kwargs)


# ---------------------------------------------------------------- demo data


def test_make_demo_data_is_deterministic_and_idempotent(demo_root, tmp_path):
    again = make_demo_data.main(['--out', str(tmp_path / 'demo')])
    # Running a second time over existing output overwrites it cleanly.
    make_demo_data.main(['--out', again])
    assert sorted(os.listdir(again)) == sorted(
        n for n, _ in make_demo_data.SOURCES)
    files = sorted(
        osp.relpath(p, demo_root)
        for p in glob.glob(osp.join(demo_root, '**', '*.*'), recursive=True))
    assert len(files) > 200
    match, mismatch, errors = filecmp.cmpfiles(
        demo_root, again, files, shallow=False)
    assert not mismatch and not errors
    other = make_demo_data.main(['--out', str(tmp_path / 'o'), '--seed', '1'])
    assert not filecmp.cmp(
        osp.join(demo_root, 'folder_cls/train/red/0002.jpg'),
        osp.join(other, 'folder_cls/train/red/0002.jpg'),
        shallow=False)


def test_demo_coco_and_ade_files(demo_root):
    for name, num_cats in (('coco_a', 3), ('coco_b', 2)):
        with open(osp.join(demo_root, name,
                           'annotations/instances_val.json')) as f:
            coco = json.load(f)
        assert len(coco['categories']) == num_cats
        assert len(coco['images']) == make_demo_data.NUM_VAL
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            img = coco['images'][ann['image_id'] - 1]
            assert w > 0 and h > 0
            assert x + w <= img['width'] and y + h <= img['height']
    seg = np.array(
        Image.open(osp.join(demo_root, 'ade/annotations/training/0000.png')))
    assert seg.dtype == np.uint8 and seg.shape == (64, 64)
    assert 0 in seg and set(np.unique(seg)) <= {0, 1, 2, 3, 4}


# ------------------------------------------------------- MultiSourceDataset


@pytest.mark.parametrize('split', ['train', 'val'])
@pytest.mark.parametrize('task', ['cls', 'det', 'seg'])
def test_stock_classes_read_demo_sources(demo_cfg, demo_root, task, split):
    dataset = build(demo_cfg, demo_root, task, split)
    names = TASK_SOURCES[task]
    num = make_demo_data.NUM_TRAIN if split == 'train' else (
        make_demo_data.NUM_VAL)
    assert dataset.task == task and dataset.source_names == names
    assert dataset.cumulative_sizes == [
        num * (i + 1) for i in range(len(names))
    ]
    assert len(dataset) == num * len(names)
    meta = dataset.metainfo
    assert meta['task'] == task and list(meta['sources']) == names
    num_classes = demo_cfg.demo_num_classes
    for name in names:
        assert len(meta['sources'][name]['classes']) == num_classes[name]
    # The label spaces of a task's sources differ.
    classes = [meta['sources'][n]['classes'] for n in names]
    assert len(set(classes)) == len(classes)

    for source_idx, name in enumerate(names):
        for idx in (dataset.cumulative_sizes[source_idx] - 1,
                    dataset.cumulative_sizes[source_idx] - num):
            data = dataset[idx]
            sample = data['data_samples']
            assert sample.task == task and sample.source == name
            inputs = data['inputs']
            assert inputs.dtype == torch.uint8 and inputs.shape[0] == 3
            if task == 'cls':
                assert inputs.shape[1:] == (64, 64)
                assert 0 <= int(sample.gt_label) < num_classes[name]
            elif task == 'det':
                assert max(inputs.shape[1:]) == 128
                labels = sample.gt_instances.labels
                assert len(labels) > 0
                assert labels.max() < num_classes[name]
            else:
                assert inputs.shape[1:] == (64, 64)
                seg = sample.gt_sem_seg.data[0].numpy()
                assert set(
                    np.unique(seg)) <= set(range(num_classes[name])) | {255}
                if split == 'val':  # not cropped: compare with the file
                    ade = np.array(Image.open(sample.seg_map_path))
                    # reduce_zero_label: ADE's 0 is 255 (ignore), 1..4 0..3.
                    np.testing.assert_array_equal(
                        seg, np.where(ade == 0, 255, ade - 1))


def test_folder_classes_come_from_sorted_folders(demo_cfg, demo_root):
    dataset = build(demo_cfg, demo_root, 'cls', 'val', names=['folder_cls'])
    assert dataset.metainfo['classes'] == ('blue', 'green', 'red', 'yellow')
    labels = [
        int(dataset[i]['data_samples'].gt_label) for i in range(len(dataset))
    ]
    assert sorted(set(labels)) == [0, 1, 2, 3]
    # Class 'red' is drawn red: its images are red on average (BGR input).
    red = dataset[labels.index(2)]['inputs'].float().mean((1, 2))
    assert red[2] > red[0] and red[2] > red[1]


def test_single_source_metainfo_is_the_source_metainfo(demo_cfg, demo_root):
    dataset = build(demo_cfg, demo_root, 'det', 'val', names=['coco_b'])
    meta = dataset.metainfo
    source_meta = dataset.datasets[0].metainfo
    assert meta['classes'] == source_meta['classes'] == ('cyan_disk',
                                                         'magenta_disk')
    assert meta['sources'] == dict(coco_b=source_meta)
    assert meta['task'] == 'det'
    meta['classes'] = ()  # a copy: the dataset is not changed
    assert dataset.metainfo['classes'] == ('cyan_disk', 'magenta_disk')
    # Several sources: no top-level classes, which would be ambiguous.
    assert 'classes' not in build(
        demo_cfg, demo_root, 'det', 'val', lazy_init=True).metainfo


def test_stock_metrics_score_ground_truth_perfectly(demo_cfg, demo_root):
    """The demo evaluators read the demo files and the single-source
    metainfo: ground truth given as predictions scores 100%."""
    dataset = build(demo_cfg, demo_root, 'det', 'val', names=['coco_a'])
    metric_cfg = demo_cfg.demo_coco_a_evaluator.to_dict()
    metric_cfg['ann_file'] = metric_cfg['ann_file'].replace(
        demo_cfg.demo_data_root, demo_root)
    metric = METRICS.build(metric_cfg)
    metric.dataset_meta = dataset.metainfo
    with open(metric_cfg['ann_file']) as f:
        coco = json.load(f)
    for img in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
        boxes = torch.tensor([a['bbox'] for a in anns])
        boxes[:, 2:] += boxes[:, :2]
        metric.process({}, [
            dict(
                img_id=img['id'],
                ori_shape=(img['height'], img['width']),
                pred_instances=dict(
                    bboxes=boxes,
                    scores=torch.ones(len(anns)),
                    labels=torch.tensor([a['category_id'] - 1 for a in anns])))
        ])
    assert metric.evaluate(len(coco['images']))['coco/bbox_mAP'] == 1.0

    dataset = build(demo_cfg, demo_root, 'seg', 'val')
    metric = METRICS.build(demo_cfg.demo_ade_evaluator)
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        sample.pred_sem_seg = sample.gt_sem_seg
        metric.process({}, [sample.to_dict()])
    assert metric.evaluate(len(dataset))['mIoU'] == 100.0


def test_pipeline_injected_only_where_missing(demo_cfg, demo_root):
    own = demo_source(demo_cfg, demo_root, 'annfile_cls', 'val')
    own['pipeline'] = [dict(type='mmpretrain.LoadImageFromFile')]
    dataset = MultiSourceDataset(
        task='cls',
        sources=dict(
            folder_cls=demo_source(demo_cfg, demo_root, 'folder_cls', 'val'),
            annfile_cls=own),
        pipeline=demo_cfg.cls_test_pipeline)
    assert set(dataset[0]) == {'inputs', 'data_samples'}
    raw = dataset[len(dataset) - 1]
    assert 'data_samples' not in raw and raw['img'].shape == (64, 64, 3)


def test_built_sources_lazy_init_and_errors_name_the_source(
        demo_cfg, demo_root):

    def broken(results):
        raise KeyError('no such key')

    built = DATASETS.build(
        dict(
            demo_source(demo_cfg, demo_root, 'folder_cls', 'val'),
            pipeline=[broken]))
    dataset = MultiSourceDataset(
        task='cls',
        sources=dict(
            broken=built,
            annfile_cls=demo_source(demo_cfg, demo_root, 'annfile_cls',
                                    'val')),
        pipeline=demo_cfg.cls_test_pipeline,
        lazy_init=True)
    # As mmengine's ConcatDataset: the concatenation waits, the sources
    # follow their own lazy_init.
    assert not dataset._fully_initialized
    assert len(dataset) == 2 * make_demo_data.NUM_VAL  # initialises
    assert dataset.cumulative_sizes == [8, 16]
    with pytest.raises(RuntimeError, match="source 'broken' of task 'cls'"):
        dataset[0]
    assert dataset[-1]['data_samples'].source == 'annfile_cls'
    with pytest.raises(IndexError):
        dataset[len(dataset)]

    bad = demo_source(demo_cfg, demo_root, 'coco_a', 'val')
    bad['type'] = 'mmdet.NoSuchDataset'
    with pytest.raises(KeyError, match="Source 'coco_a' of task 'det'"):
        MultiSourceDataset(task='det', sources=dict(coco_a=bad))
    with pytest.raises(TypeError, match="'x' of task 'det'"):
        MultiSourceDataset(task='det', sources=dict(x=[1, 2]))


@pytest.mark.parametrize('key, value', [
    ('data_root', 'no_such_root'),
    ('ann_file', 'meta/no_such_file.txt'),
    ('data_prefix', 'no_such_dir'),
])
def test_missing_paths_fail_before_building(demo_cfg, demo_root, monkeypatch,
                                            key, value):
    sources = dict(
        folder_cls=demo_source(demo_cfg, demo_root, 'folder_cls', 'train'),
        annfile_cls=demo_source(demo_cfg, demo_root, 'annfile_cls', 'train'))
    sources['annfile_cls'][key] = value
    built = []
    monkeypatch.setattr(DATASETS, 'build', lambda cfg: built.append(cfg))
    with pytest.raises(FileNotFoundError) as error:
        MultiSourceDataset(task='cls', sources=sources)
    message = str(error.value)
    assert "'annfile_cls'" in message and "'cls'" in message
    assert key in message and value in message
    assert not built  # checked before any source was built


def test_missing_paths_of_dict_prefixes(demo_cfg, demo_root):
    source = demo_source(demo_cfg, demo_root, 'ade', 'val')
    source['data_prefix']['seg_map_path'] = 'annotations/nope'
    with pytest.raises(
            FileNotFoundError,
            match=r"'ade' of task 'seg'.*data_prefix.seg_map_path"):
        MultiSourceDataset(task='seg', sources=dict(ade=source))


@pytest.mark.parametrize('sources', [{}, {
    'bad-name': {}
}, {
    '': {}
}, {
    '1st': {}
}, [('a', {})]])
def test_invalid_sources(sources):
    with pytest.raises(ValueError, match="of task 'cls'"):
        MultiSourceDataset(task='cls', sources=sources)


def test_invalid_task():
    with pytest.raises(ValueError, match='task'):
        MultiSourceDataset(task='', sources=dict(a={}))


# --------------------------------------------------------- SourceMixSampler


@pytest.fixture(scope='module')
def sizes_32_8(demo_cfg, demo_root):
    """A cls dataset without pipeline: 'big' (32 samples), 'small' (8)."""
    return MultiSourceDataset(
        task='cls',
        sources=dict(
            big=demo_source(demo_cfg, demo_root, 'folder_cls', 'train'),
            small=demo_source(demo_cfg, demo_root, 'annfile_cls', 'val')))


def batches(sampler, num, batch_size):
    indices = list(itertools.islice(iter(sampler), num * batch_size))
    return [
        indices[i:i + batch_size] for i in range(0, len(indices), batch_size)
    ]


def count_small(batch):
    return sum(idx >= 32 for idx in batch)


@pytest.mark.parametrize('ratio, batch_size, num_small', [
    ([1, 3], 4, 3),
    (dict(small=1, big=1), 4, 2),
    (dict(small=1, big=3), 8, 2),
    ('size', 5, 1),
])
def test_sampler_mix(sizes_32_8, ratio, batch_size, num_small):
    sampler = DATA_SAMPLERS.build(
        dict(
            type='SourceMixSampler',
            dataset=sizes_32_8,
            batch_size=batch_size,
            source_ratio=ratio,
            seed=0))
    assert isinstance(sampler, SourceMixSampler)
    for batch in batches(sampler, 20, batch_size):
        assert count_small(batch) == num_small
        assert all(0 <= idx < 40 for idx in batch)


@pytest.mark.parametrize('ratio, batch_size, error, match', [
    (dict(big=1, smal=1), 4, ValueError, r"unknown: \['smal'\]"),
    (dict(big=1), 4, ValueError, r"missing: \['small'\]"),
    ([1, 2, 3], 4, ValueError, 'one entry per source'),
    # less than 1 image of 'small' in the global batch (4 x 1 rank)
    ([10, 1], 4, ValueError, "source 'small' a share of 9.091%"),
    ('size', 4, ValueError, "source 'small' a share of 20.000%"),
    ([1, -1], 4, ValueError, 'non-negative'),
    ('equal', 4, TypeError, 'source_ratio'),
])
def test_sampler_errors(sizes_32_8, ratio, batch_size, error, match):
    with pytest.raises(error, match=match):
        SourceMixSampler(sizes_32_8, batch_size, ratio, seed=0)


def test_sampler_is_deterministic_and_covers_sources(sizes_32_8):

    def first(seed):
        return batches(
            SourceMixSampler(sizes_32_8, 4, [1, 1], seed=seed), 16, 4)

    assert first(3) == first(3)
    assert first(3) != first(4)
    indices = sum(first(3), [])
    # 16 batches take 32 samples of each source: one pass over 'big' (all
    # of it), four over 'small'.
    assert sorted(i for i in indices if i < 32) == list(range(32))
    small = [i for i in indices if i >= 32]
    assert all(
        sorted(small[k:k + 8]) == list(range(32, 40)) for k in range(0, 32, 8))


def test_sampler_ranks_draw_disjoint_samples(sizes_32_8, monkeypatch):
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr(source_mix_sampler, 'get_dist_info',
                            lambda r=rank: (r, 2))
        sampler = SourceMixSampler(sizes_32_8, 4, [1, 1], seed=5)
        assert (sampler.rank, sampler.world_size) == (rank, 2)
        per_rank.append(sum(batches(sampler, 8, 4), []))
    # The ranks share each source's shuffle and take alternate slots of it:
    # 16 of the 32 of 'big', 4 of the 8 of 'small' first.
    big = [{i for i in indices if i < 32} for indices in per_rank]
    assert len(big[0]) == len(big[1]) == 16 and not big[0] & big[1]
    small = [{i for i in indices if i >= 32} for indices in per_rank]
    first_small = [
        set([i for i in indices if i >= 32][:4]) for indices in per_rank
    ]
    assert not first_small[0] & first_small[1]
    assert first_small[0] | first_small[1] == small[0] | small[1] == set(
        range(32, 40))


def test_fast_forward_equals_skipping(sizes_32_8):
    reference = batches(SourceMixSampler(sizes_32_8, 4, [1, 3], seed=1), 30, 4)
    resumed = SourceMixSampler(sizes_32_8, 4, [1, 3], seed=1)
    resumed.fast_forward(23)
    assert batches(resumed, 7, 4) == reference[23:]
    fresh = SourceMixSampler(sizes_32_8, 4, [1, 3], seed=1)
    fresh.fast_forward(0)
    assert batches(fresh, 3, 4) == reference[:3]
    with pytest.raises(ValueError):
        fresh.fast_forward(-1)


def test_sampler_in_dataloader_mixes_tagged_sources(demo_cfg, demo_root):
    dataset = build(demo_cfg, demo_root, 'cls', 'train', lazy_init=True)
    sampler = SourceMixSampler(
        dataset, 4, dict(folder_cls=1, annfile_cls=3), seed=0)
    loader = DataLoader(
        dataset, batch_size=4, sampler=sampler, collate_fn=pseudo_collate)
    for batch in itertools.islice(loader, 2):
        sources = [s.source for s in batch['data_samples']]
        assert sorted(sources) == ['annfile_cls'] * 3 + ['folder_cls']
        assert len(batch['inputs']) == 4


# ------------------------------------------------------------- base configs


def test_missing_paper_data_root_names_the_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(osp.join(DATASET_CFGS, 'imagenet.py'))
    with pytest.raises(
            FileNotFoundError,
            match=r"'imagenet' of task 'cls'.*data/imagenet/"):
        MultiSourceDataset(
            task='cls', sources=dict(imagenet=cfg.imagenet_train))


@pytest.mark.parametrize('name', sorted(PAPER_SOURCES))
def test_paper_source_configs(name):
    dataset_type, metric_type, num_classes = PAPER_SOURCES[name]
    cfg = Config.fromfile(osp.join(DATASET_CFGS, f'{name}.py'))
    keys = ('train', 'val', 'evaluator', 'num_classes', 'train_size')
    # Objects365 also offers v2 (objects365_v2_*) as an alternative.
    assert {k for k in cfg if not k.startswith(f'{name}_v2_')} == {
        f'{name}_{key}' for key in keys}
    # The stated train size is Table 1's, rounded as the table rounds.
    size = cfg[f'{name}_train_size']
    assert abs(size - TABLE1_SIZES[name]) / TABLE1_SIZES[name] < 0.03
    for split in ('train', 'val'):
        source = cfg[f'{name}_{split}']
        assert source.type == dataset_type and 'pipeline' not in source
        assert DATASETS.get(source.type) is not None
        assert source.data_root.startswith('data/')
    assert cfg[f'{name}_val'].test_mode
    assert cfg[f'{name}_evaluator'].type == metric_type
    assert METRICS.get(metric_type) is not None
    assert cfg[f'{name}_num_classes'] == num_classes
    stock = DATASETS.get(dataset_type).METAINFO.get('classes')
    if stock:  # the classes of the stock class match the head size
        assert len(stock) == num_classes


@pytest.mark.parametrize('file,tasks', [
    ('pipelines.py', ('cls', 'det')),
    ('demo.py', ('cls', 'det', 'seg')),
    ('../tasks/seg_ade20k_coco_stuff.py', ('seg', )),
])
def test_pipeline_transforms_are_registered(file, tasks):
    cfg = Config.fromfile(osp.join(DATASET_CFGS, file))
    for task in tasks:
        pack = dict(
            cls='mmpretrain.PackInputs',
            det='mmdet.PackDetInputs',
            seg='mmseg.PackSegInputs')[task]
        for stage in ('train', 'test'):
            pipeline = cfg[f'{task}_{stage}_pipeline']
            assert pipeline[-1].type == pack
            for transform in pipeline:
                assert '.' in transform.type  # scope-prefixed
                TRANSFORMS.build(transform)
