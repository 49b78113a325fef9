"""The scripts of ``tools/`` as modules (``tools`` is no package), for tests
that call their ``main`` or helpers in-process."""
import importlib.util
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name: str):
    """``tools/<name>.py`` as a freshly executed module."""
    spec = importlib.util.spec_from_file_location(
        f'tools_{name}', osp.join(REPO_ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
