"""What setup.py promises: the Python versions the code runs on."""
import ast
import os.path as osp
import shutil
import subprocess
import sys

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
