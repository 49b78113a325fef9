"""Fixtures shared by the test modules.

The demo configs (``configs/_base_/datasets/demo.py``) name their data by the
relative path ``data/demo``, so every test runs with the repository root as
its working directory, and ``demo_data`` writes the demo data there.
"""
import os.path as osp

import pytest
import torch.distributed as dist
from _tools import REPO_ROOT, load_tool

DEMO_DATA_ROOT = osp.join(REPO_ROOT, 'data', 'demo')


@pytest.fixture(autouse=True)
def repo_root_cwd(monkeypatch):
    """Run every test from the repository root, where the configs' relative
    paths (``data/demo``, ``configs/...``) resolve."""
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(scope='session')
def demo_data():
    """Write the demo data to ``<repo>/data/demo`` once per session (the
    script replaces each source directory, so stale data is overwritten) and
    return that directory."""
    return load_tool('make_demo_data').main(['--out', DEMO_DATA_ROOT])


@pytest.fixture
def process_group():
    """A 1-process gloo group, in memory, for the duration of a test."""
    dist.init_process_group(
        'gloo', store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()
