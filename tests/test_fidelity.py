"""docs/fidelity.md names only what exists: every class, option
(``Class(option=...)``), attribute (``Class.name``) and file it cites; and
the config comments that state a source's class count agree with the
configs."""
import importlib
import inspect
import os.path as osp
import pkgutil
import re

import pytest
from _tools import REPO_ROOT
from mmengine.config import Config

import xlearner_mm

FIDELITY = osp.join(REPO_ROOT, 'docs', 'fidelity.md')


def _classes() -> dict:
    """Every class defined in xlearner_mm, by name."""
    found = {}
    for info in pkgutil.walk_packages(xlearner_mm.__path__, 'xlearner_mm.'):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == info.name:
                found[name] = obj
    return found


def _cited() -> list:
    with open(FIDELITY) as f:
        return re.findall(r'`([^`]+)`', f.read())


def test_the_page_cites_something_of_each_kind():
    cited = _cited()
    assert any(re.fullmatch(r'[A-Z]\w+\(\w+=\.\.\.\)', c) for c in cited)
    assert any(c.startswith('configs/') for c in cited)
    assert any(re.fullmatch(r'[A-Z]\w+\.\w+', c) for c in cited)


def test_every_option_class_and_file_the_page_names_exists():
    classes = _classes()
    missing = []
    for cited in _cited():
        option = re.fullmatch(r'([A-Z]\w+)\((\w+)=\.\.\.\)', cited)
        attribute = re.fullmatch(r'([A-Z]\w+)\.(\w+)', cited)
        if option:
            cls, name = option.groups()
            if cls not in classes or name not in inspect.signature(
                    classes[cls].__init__).parameters:
                missing.append(cited)
        elif attribute:
            cls, name = attribute.groups()
            if cls not in classes or not (
                    hasattr(classes[cls], name)
                    or f'self.{name} =' in inspect.getsource(classes[cls])):
                missing.append(cited)
        elif re.fullmatch(r'[A-Z][A-Za-z]+', cited) and cited not in (
                'LinearLR', 'MultiStepLR'):  # mmengine's schedulers
            if cited not in classes:
                missing.append(cited)
        elif re.fullmatch(r'(configs|tools|docs|xlearner_mm)/\S+', cited):
            if not osp.exists(osp.join(REPO_ROOT, cited)):
                missing.append(cited)
    assert missing == []


@pytest.mark.parametrize('source,words', [
    ('compcars', 'CompCars ({:,} car models'),
    ('tsinghua_dogs', 'Tsinghua Dogs ({:,}'),
])
def test_extended_sources_comment_states_the_trained_class_counts(
        source, words):
    path = osp.join(REPO_ROOT, 'configs', '_base_', 'datasets',
                    'extended_sources.py')
    num_classes = Config.fromfile(path)[f'{source}_num_classes']
    with open(path) as f:
        assert words.format(num_classes) in f.read()
