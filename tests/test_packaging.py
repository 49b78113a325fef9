"""What setup.py promises: the Python versions the code runs on."""
import ast
import os
import os.path as osp
import shutil
import subprocess
import sys
import warnings

from _tools import REPO_ROOT


def python_requires() -> str:
    """``python_requires`` of setup.py, read without running it."""
    tree = ast.parse(open(osp.join(REPO_ROOT, 'setup.py')).read())
    keyword, = [k for node in ast.walk(tree) if isinstance(node, ast.Call)
                for k in node.keywords if k.arg == 'python_requires']
    return ast.literal_eval(keyword.value)


def test_code_runs_on_the_python_that_setup_py_requires():
    """vermin finds no construct newer than ``python_requires`` in the
    package and the tools. (vermin cannot see methods of objects whose type
    it does not know, such as ``BaseException.add_note`` of 3.11.)"""
    minimum = python_requires()
    assert minimum.startswith('>=')
    vermin = shutil.which('vermin', path=osp.dirname(sys.executable))
    assert vermin, 'vermin is in requirements/tests.txt'
    proc = subprocess.run(
        [vermin, '--no-tips', '--violations', '--eval-annotations',
         f'-t={minimum[2:]}-', 'xlearner_mm', 'tools'],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sources_compile_without_warnings():
    """Every module of the package and the tools compiles with warnings as
    errors. An invalid escape in a string (``'\\m'``) warns only when the
    file is compiled, which a cached ``.pyc`` skips, so the test suite's
    warning filters alone would not see it."""
    paths = [
        osp.join(root, name)
        for top in ('xlearner_mm', 'tools')
        for root, _, names in os.walk(osp.join(REPO_ROOT, top))
        for name in sorted(names) if name.endswith('.py')
    ]
    assert len(paths) > 50
    failures = []
    for path in paths:
        with open(path, encoding='utf-8') as f:
            source = f.read()
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            try:
                compile(source, path, 'exec', dont_inherit=True)
            except (SyntaxError, Warning) as error:
                failures.append(f'{osp.relpath(path, REPO_ROOT)}: {error}')
    assert not failures, '\n'.join(failures)
