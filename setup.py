from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def version():
    scope = {}
    with open('xlearner_mm/version.py', encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


def requirements(path):
    with open(path, encoding='utf-8') as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


setup(
    name='xlearner_mm',
    version=version(),
    description='X-Learner (ECCV 2022): multi-source multi-task pre-training '
    'for OpenMMLab (mmpretrain, mmdet, mmseg)',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    # The oldest Python that torch 2.1 (the oldest tested torch) supports;
    # tests/test_packaging.py checks the code against it with vermin.
    python_requires='>=3.8',
    install_requires=requirements('requirements/runtime.txt'),
    extras_require={'tests': requirements('requirements/tests.txt')},
    license='Apache License 2.0',
    zip_safe=False)
