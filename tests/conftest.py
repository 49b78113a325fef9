"""Fixtures shared by the test modules.

The demo configs (``configs/_base_/datasets/demo.py``) name their data by the
relative path ``data/demo``, so every test runs with the repository root as
its working directory, and ``demo_data`` writes the demo data there.

``make test`` runs the modules in pytest-xdist workers (``--dist loadgroup``:
a module's tests, or an ``xdist_group``, stay on one worker, so its
module-scoped fixtures are built once). The workers share the machine's cores
between them and write the demo data once per run.
"""
import os
import os.path as osp

import pytest
import torch
import torch.distributed as dist
from _tools import REPO_ROOT, load_tool
from filelock import FileLock
from mmengine.registry import DefaultScope

from xlearner_mm.utils.compat import torch_version

DEMO_DATA_ROOT = osp.join(REPO_ROOT, 'data', 'demo')
OLD_TORCH = torch_version() < (2, 4)

if 'PYTEST_XDIST_WORKER_COUNT' in os.environ:
    # N workers with a thread per core each would oversubscribe the cores.
    torch.set_num_threads(
        max(1, (os.cpu_count() or 1) //
            int(os.environ['PYTEST_XDIST_WORKER_COUNT'])))


@pytest.fixture(autouse=True)
def repo_root_cwd(monkeypatch):
    """Run every test from the repository root, where the configs' relative
    paths (``data/demo``, ``configs/...``) resolve."""
    monkeypatch.chdir(REPO_ROOT)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``current_torch`` are skipped on the older stack."""
    if not OLD_TORCH:
        return
    skip = pytest.mark.skip(reason='run on the current torch only')
    for item in items:
        if item.get_closest_marker('current_torch'):
            item.add_marker(skip)


@pytest.fixture(scope='module', autouse=True)
def module_default_scope():
    """Each module (its module-scoped fixtures first: autouse fixtures come
    first in their scope) and, below, each test starts in xlearner_mm's
    default scope, whichever module an xdist worker ran before: a Runner
    makes its config's scope (mmdet, mmseg) current and leaves it so."""
    with DefaultScope.overwrite_default_scope('xlearner_mm'):
        yield


@pytest.fixture(autouse=True)
def default_scope():
    with DefaultScope.overwrite_default_scope('xlearner_mm'):
        yield


@pytest.fixture(scope='session')
def demo_data(testrun_uid):
    """Write the demo data to ``<repo>/data/demo`` once per test run (the
    script replaces each source directory, so stale data is overwritten) and
    return that directory. The first xdist worker to ask writes it, under a
    lock; the others find the run's id in the stamp and wait for nothing."""
    stamp = DEMO_DATA_ROOT + '.test_run'
    os.makedirs(osp.dirname(DEMO_DATA_ROOT), exist_ok=True)
    with FileLock(DEMO_DATA_ROOT + '.lock'):
        if osp.isfile(stamp):
            with open(stamp) as f:
                if f.read() == testrun_uid:
                    return DEMO_DATA_ROOT
        load_tool('make_demo_data').main(['--out', DEMO_DATA_ROOT])
        with open(stamp, 'w') as f:
            f.write(testrun_uid)
    return DEMO_DATA_ROOT


@pytest.fixture
def process_group():
    """A 1-process gloo group, in memory, for the duration of a test."""
    dist.init_process_group(
        'gloo', store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()
