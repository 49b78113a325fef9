"""What the docstrings promise: every class that xlearner_mm registers shows,
in an ``Examples:`` section, how a config names it."""
import inspect
import re

from mmengine.registry import Registry

import xlearner_mm.registry
from xlearner_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

def registered_classes() -> dict:
    """``{registered name: (registry, class)}`` of every class of xlearner_mm
    in its registries, and in their parents, mmengine's root registries (the
    ``ZooPretrained`` weight initializer is registered there, for every
    scope)."""
    registries = [
        registry for registry in vars(xlearner_mm.registry).values()
        if isinstance(registry, Registry) and registry.scope == 'xlearner_mm'
    ]
    classes = {}
    for registry in registries:
        registry.import_from_location()
    for registry in registries:
        for owner in (registry, registry.parent):
            for name, cls in owner.module_dict.items():
                if cls.__module__.startswith('xlearner_mm.'):
                    classes[name] = (registry, cls)
    return classes


def examples_section(cls) -> str:
    """The ``Examples:`` section of ``cls``'s docstring ('' without one)."""
    _, found, rest = (inspect.getdoc(cls) or '').partition('\nExamples:\n')
    section = []
    for line in rest.splitlines():
        if line and not line.startswith(' '):  # the next section
            break
        section.append(line)
    return '\n'.join(section) if found else ''


def test_every_registered_class_has_a_config_example():
    classes = registered_classes()
    assert {'XLearner', 'ZooPretrained', 'TaskOptimWrapperConstructor'} <= \
        set(classes)
    missing = []
    for name, (registry, cls) in sorted(classes.items()):
        # mmengine's build_optim_wrapper reads `optim_wrapper.constructor`.
        key = ('constructor'
               if registry is OPTIM_WRAPPER_CONSTRUCTORS else 'type')
        pattern = rf"{key}=(['\"])(xlearner_mm\.)?{name}\1"
        if not re.search(pattern, examples_section(cls)):
            missing.append(f"{cls.__module__}.{cls.__qualname__} "
                           f"({key}='{name}')")
    assert not missing, (
        'These registered classes have no config example naming them in an '
        '`Examples:` section of their docstring: ' + ', '.join(missing))
