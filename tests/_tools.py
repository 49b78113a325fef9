"""Helpers shared by the test modules: the scripts of ``tools/`` as modules
(``tools`` is no package), and per-run names for in-process Runners."""
import importlib.util
import itertools
import os
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name: str):
    """``tools/<name>.py`` as a freshly executed module."""
    spec = importlib.util.spec_from_file_location(
        f'tools_{name}', osp.join(REPO_ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_run_names = itertools.count()


def isolate_run(cfg, work_dir, prefix: str) -> None:
    """Point ``cfg`` at ``work_dir`` under a name no other Runner of this
    session has: mmengine keeps loggers, message hubs and visualizers by name,
    and a second Runner with the same name would write to the first one's
    log directory. Scalars go to JSON only (no TensorBoard writer thread)."""
    cfg.work_dir = str(work_dir)
    name = f'{prefix}_{next(_run_names)}_{os.getpid()}_{osp.basename(work_dir)}'
    cfg.experiment_name = name
    cfg.visualizer = dict(
        type='Visualizer', vis_backends=[dict(type='LocalVisBackend')],
        name=name)
