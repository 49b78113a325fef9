"""Linear-probe evaluation (paper Sec. 4.2): the L-BFGS logistic regression,
the lambda grid and its selection, feature extraction from an exported
backbone checkpoint, and tools/linear_probe.py end to end on the demo data."""
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.backbones import ResNet
from mmengine.config import Config

from _tools import REPO_ROOT
from xlearner_mm.evaluation import (LogisticRegression, build_frozen_backbone,
                                    build_probe_dataloaders, extract_features,
                                    lambda_grid, run_linear_probe,
                                    select_lambda, stratified_holdout)
from xlearner_mm.utils import register_all_modules

DEFAULT_CFG = 'configs/linear_probe/_base_/default.py'
DEMO_CFG = 'configs/linear_probe/demo.py'
# A ResNet-18 of width 8: last stage 64 channels.
TINY_BACKBONE = dict(
    type='mmdet.ResNet', depth=18, base_channels=8, out_indices=(3, ))


@pytest.fixture(autouse=True)
def _registered_one_thread():
    """Registries filled; one torch thread (the fits are tiny and the CPU
    is shared), restored afterwards for the other test modules."""
    register_all_modules()
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


def _tiny_checkpoint(path, drop_prefix=None):
    """Write a seeded tiny ResNet in the exported-backbone format."""
    torch.manual_seed(0)
    state_dict = ResNet(
        depth=18, base_channels=8, out_indices=(3, )).state_dict()
    if drop_prefix:
        state_dict = {
            k: v
            for k, v in state_dict.items() if not k.startswith(drop_prefix)
        }
    torch.save(dict(state_dict=state_dict, meta=dict(stage='squeeze')), path)
    return str(path)


def _blobs(n_per_class, seed):
    """Three well-separated Gaussian blobs in 5-D (linearly separable)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(3, 5) * 8
    x = torch.cat(
        [c + torch.randn(n_per_class, 5, generator=g) for c in centers])
    return x, torch.arange(3).repeat_interleave(n_per_class)


def test_logistic_regression_separable_and_objective():
    x, y = _blobs(20, seed=0)
    x_test, y_test = _blobs(50, seed=1)
    lam = 1e-3
    model = LogisticRegression(lam).fit(x, y, num_classes=3)
    assert model.converged and model.n_iter <= 1000
    assert (model.predict(x) == y).all()
    assert (model.predict(x_test) == y_test).all()
    # Stationarity of the documented objective, derived by hand:
    # mean CE + lam/2 ||W||^2, bias not penalised.
    x64 = x.double()
    residual = (F.softmax(model.logits(x64), 1) -
                F.one_hot(y, 3).double()) / len(y)
    grad_w = residual.t() @ x64 + lam * model.weight
    grad_b = residual.sum(0)
    assert grad_w.abs().max() <= 1e-4 and grad_b.abs().max() <= 1e-4
    # The bias is not shrunk: a shift of every feature is absorbed by it
    # and leaves W alone (fitted to a tight tolerance to compare optima).
    tight = dict(lam=1e-1, tol=1e-8)
    plain = LogisticRegression(**tight).fit(x, y, num_classes=3)
    shifted = LogisticRegression(**tight).fit(x + 5, y, num_classes=3)
    torch.testing.assert_close(shifted.weight, plain.weight, atol=1e-5, rtol=0)


def test_lambda_grid():
    grid = lambda_grid()
    assert len(grid) == 9
    assert grid[0] == pytest.approx(1e-1) and grid[-1] == pytest.approx(1e-5)
    ratios = [math.log10(a / b) for a, b in zip(grid, grid[1:])]
    assert ratios == pytest.approx([0.5] * 8)
    assert lambda_grid(5, (1e-5, 1e-1)) == pytest.approx(
        [1e-5, 1e-4, 1e-3, 1e-2, 1e-1])


def _signal_plus_noise(n_train, num_noise_dims, flip, seed, n_val=200):
    """Label = sign of feature 0 (scale 1); ``num_noise_dims`` features of
    scale 0.3 carry nothing; ``flip`` of the training labels are flipped."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_val
    signal = torch.randn(n, 1, generator=g)
    x = torch.cat([signal, 0.3 * torch.randn(n, num_noise_dims, generator=g)],
                  1)
    y = (signal[:, 0] > 0).long()
    flipped = torch.rand(n_train, generator=g) < flip
    y_train = torch.where(flipped, 1 - y[:n_train], y[:n_train])
    return (x[:n_train], y_train), (x[n_train:], y[n_train:])


def test_select_lambda_noisy_vs_clean():
    # Clean, low-dimensional, plenty of data: weak regularisation is best.
    clean_best, _ = select_lambda(*_signal_plus_noise(100, 4, 0.0, seed=1), 2,
                                  lambda_grid())
    # Few samples, many noise features, 25% flipped labels: small lambda
    # fits the flips through the noise features.
    noisy_best, scores = select_lambda(
        *_signal_plus_noise(40, 100, 0.25, seed=1), 2, lambda_grid())
    assert clean_best <= 1e-4
    assert noisy_best >= 1e-2
    assert scores[0]['top1'] > scores[-1]['top1']  # 1e-1 beats 1e-5


def test_stratified_holdout():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2])
    train_idx, val_idx = stratified_holdout(labels, 0.2, seed=0)
    assert labels[val_idx].tolist() == [0, 0, 1]  # 2 of 10, 1 of 5, 0 of 1
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(16))
    again = stratified_holdout(labels, 0.2, seed=0)
    assert torch.equal(again[1], val_idx)
    with pytest.raises(ValueError, match='no validation sample'):
        stratified_holdout(torch.tensor([0, 1, 2]), 0.2)


def _demo_probe_cfg(batch_size):
    """The 224x224 protocol config on the demo folder_cls source."""
    cfg = Config.fromfile(DEFAULT_CFG)
    demo = Config.fromfile('configs/_base_/datasets/demo.py')
    cfg.dataloader.update(batch_size=batch_size, num_workers=0)
    cfg.datasets = dict(
        folder_cls=dict(
            train=dict(dataset=demo.demo_folder_cls_train),
            test=dict(dataset=demo.demo_folder_cls_val)))
    return cfg


def test_extract_features_from_exported_checkpoint(demo_data, tmp_path):
    backbone = build_frozen_backbone(
        TINY_BACKBONE, _tiny_checkpoint(tmp_path / 'backbone.pth'))
    assert not backbone.training
    assert not any(p.requires_grad for p in backbone.parameters())
    # The loaded weights are the checkpoint's, not a fresh init.
    torch.manual_seed(0)
    reference = ResNet(depth=18, base_channels=8, out_indices=(3, ))
    torch.testing.assert_close(backbone.conv1.weight, reference.conv1.weight)

    cfg = _demo_probe_cfg(batch_size=4)
    from xlearner_mm.registry import MODELS
    preprocessor = MODELS.build(cfg.data_preprocessor)
    loader = build_probe_dataloaders(cfg)['folder_cls']['train']
    feats, labels = extract_features(backbone, preprocessor, loader)
    num_images = len(glob.glob(osp.join(demo_data, 'folder_cls/train/*/*')))
    assert feats.shape == (num_images, 64) and labels.shape == (num_images, )
    assert labels.tolist() == [
        info['gt_label'] for info in loader.dataset.load_data_list()
    ]
    # BatchNorm in eval mode: the batch size does not change the features.
    one_batch = build_probe_dataloaders(_demo_probe_cfg(batch_size=64))
    feats_64, _ = extract_features(backbone, preprocessor,
                                   one_batch['folder_cls']['train'])
    torch.testing.assert_close(feats_64, feats, atol=1e-5, rtol=1e-4)


def test_checkpoint_missing_backbone_keys(tmp_path):
    checkpoint = _tiny_checkpoint(
        tmp_path / 'partial.pth', drop_prefix='layer4.')
    with pytest.raises(RuntimeError) as info:
        build_frozen_backbone(TINY_BACKBONE, checkpoint)
    # ZooPretrained's strict load names the missing keys (sorted).
    assert 'missing [layer4.0.bn1.bias, ' in str(info.value)
    assert 'partial.pth' in str(info.value)


def test_missing_data_fails_before_extraction(demo_data):
    cfg = _demo_probe_cfg(batch_size=4)
    cfg.datasets.absent = dict(
        train=dict(
            dataset=dict(
                type='mmpretrain.Food101', data_root='data/no_food-101')),
        test=dict(
            dataset=dict(
                type='mmpretrain.Food101',
                data_root='data/no_food-101',
                split='test')))
    # The checkpoint does not exist either: the data error must come first.
    with pytest.raises(
            FileNotFoundError,
            match=r'"absent" \(train split.*data/no_food-101'):
        run_linear_probe(cfg, 'no_such_checkpoint.pth')
    # A present data_root whose annotation file is missing.
    cfg.datasets.absent.train.dataset.data_root = 'data/demo/folder_cls'
    with pytest.raises(FileNotFoundError, match='"absent" .*cannot be read'):
        build_probe_dataloaders(cfg)


@pytest.mark.slow
def test_linear_probe_cli_demo(demo_data, tmp_path):
    checkpoint = _tiny_checkpoint(tmp_path / 'backbone.pth')
    out = tmp_path / 'results.json'
    # One thread: the fits are tiny, and the CPU is shared with other tests.
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable, 'tools/linear_probe.py', DEMO_CFG, checkpoint,
        '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), '--cfg-options', 'backbone.depth=18',
        'backbone.base_channels=8'
    ],
                          cwd=REPO_ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    datasets = results['datasets']
    assert set(datasets) == {'folder_cls', 'annfile_cls'}
    num_images = dict(
        folder_cls=(len(
            glob.glob(osp.join(demo_data, 'folder_cls/train/*/*'))),
                    len(glob.glob(osp.join(demo_data, 'folder_cls/val/*/*')))),
        annfile_cls=(len(
            open(osp.join(demo_data,
                          'annfile_cls/meta/train.txt')).readlines()),
                     len(
                         open(osp.join(
                             demo_data,
                             'annfile_cls/meta/val.txt')).readlines())))
    for name, res in datasets.items():
        assert res['num_train'] + res['num_val'] == num_images[name][0]
        assert res['num_test'] == num_images[name][1]
        assert res['val_source'].startswith('held-out 0.2')
        assert res['best_lambda'] in lambda_grid()
        assert len(res['lambda_scores']) == 9
        assert 0 <= res['top1'] <= 100
    # folder_cls's classes are colours, which even random features separate.
    assert datasets['folder_cls']['top1'] > 50
    assert results['average_top1'] == pytest.approx(
        sum(r['top1'] for r in datasets.values()) / 2)
    log = proc.stdout + proc.stderr
    assert 'folder_cls' in log and 'average' in log
    assert glob.glob(str(tmp_path / 'work' / 'linear_probe_*.log'))
