"""The transfer suite (``tools/transfer.py``): pre-trained backbones compared
by the paper's downstream protocol (Sec. 4.2, Tables 2-6), from checkpoints
to one results table.

For every backbone of a suite config it runs

- the linear probe of ``probe.config`` (AVG Cls and each dataset; lambda is
  chosen on a validation split inside the probe);
- each fine-tune of ``finetunes`` (Faster R-CNN on VOC07+12, DeepLabV3 on
  VOC12 aug): one **search** job per learning rate of ``lrs``, trained on the
  training set minus a held-out part (``holdout``, :class:`HoldoutSplit`)
  and scored on that part; then one **final** job at the best of them,
  trained on the whole training set and scored on the config's own
  validation split, the paper's test set (VOC07 test, VOC12 val). The test
  set never chooses anything.

Each job has its own work dir, ``<work_dir>/<backbone>/<benchmark>/<job>``.
A job whose result file exists is skipped; one that stopped midway resumes
from its last checkpoint. Training jobs run through ``tools/dist_train.sh``
(``launcher='pytorch'``), ``tools/slurm_train.sh`` (``'slurm'``) or, with
``launcher='none'``, in this process. The results go through
:func:`xlearner_mm.evaluation.build_transfer_table` into
``<work_dir>/transfer_results.{md,csv,json}``.
"""
import copy
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from xlearner_mm.evaluation import (build_transfer_table,
                                    format_transfer_markdown,
                                    read_reference_rows, run_linear_probe,
                                    write_transfer_table)
from xlearner_mm.evaluation.transfer_table import AVG_CLS, PROBE_KEY
from xlearner_mm.registry import MODELS
from xlearner_mm.structures import TaskLayout, read_checkpoint
from xlearner_mm.utils import atomic_json_dump, atomic_write_text

from .runner_setup import load_config, train_in_process

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LAUNCHERS = ('none', 'pytorch', 'slurm')
KINDS = ('resnet', 'expanded')
# What a finished job leaves in its work dir (FinalMetricsHook's for the
# fine-tunes).
FINETUNE_RESULT_FILE = 'final_metrics.json'
PROBE_RESULT_FILE = 'linear_probe.json'
# The backbone a work dir's results belong to.
BACKBONE_FILE = 'backbone.json'


def parse_backbone_arg(spec: str) -> Dict[str, dict]:
    """``NAME=PATH`` of ``tools/transfer.py --backbone`` as a suite
    ``backbones`` entry; ``NAME=random`` is the random initialisation."""
    name, sep, path = spec.partition('=')
    if not sep or not name or not path:
        raise ValueError(f'--backbone {spec!r}: expected NAME=CHECKPOINT or '
                         'NAME=random')
    return {name: dict(checkpoint=None if path == 'random' else path)}


def backbone_kind(name: str, backbone: dict) -> str:
    """``backbone.kind``, or else ``'expanded'`` for a checkpoint with an
    expanded backbone's streams (an Expansion, pruned or Hard-sharing
    checkpoint, a whole expanded export) and ``'resnet'`` for anything
    ``ZooPretrained`` loads into one ResNet."""
    key = f'backbones.{name}.checkpoint'
    checkpoint = backbone.get('checkpoint')
    if checkpoint and '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'{key}: {checkpoint} does not exist')
    kind = backbone.get('kind')
    if kind is None:
        streams = checkpoint is not None and TaskLayout.stream_tasks(
            read_checkpoint(checkpoint, key)['state_dict'])
        kind = 'expanded' if streams else 'resnet'
    if kind not in KINDS:
        raise ValueError(f'backbones.{name}.kind must be one of {KINDS}, '
                         f'got {kind!r}')
    if kind == 'expanded' and checkpoint is None:
        raise ValueError(f'backbones.{name}: an expanded backbone needs its '
                         'checkpoint')
    return kind


def _with_custom_import(cfg: Config) -> None:
    """Make the job config import xlearner_mm, whose ZooPretrained,
    PretrainedExpandedBackbone and HoldoutSplit it names."""
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    if 'xlearner_mm' not in imports:
        cfg.custom_imports = dict(imports=imports + ['xlearner_mm'],
                                  allow_failed_imports=False)


def _replace_pipelines(dataset: dict, pipeline: list) -> None:
    """Give every dataset config inside ``dataset`` (wrappers included)
    ``pipeline``."""
    if 'pipeline' in dataset:
        dataset['pipeline'] = copy.deepcopy(pipeline)
    if 'dataset' in dataset:
        _replace_pipelines(dataset['dataset'], pipeline)
    for inner in dataset.get('datasets', []):
        _replace_pipelines(inner, pipeline)


def holdout_search_config(cfg: Config, fraction: float, key: str) -> None:
    """Turn a fine-tune config into its learning-rate search config: train
    on the training set minus a held-out part, validate on that part (with
    the validation pipeline and evaluator)."""
    train = cfg.train_dataloader.dataset
    # The split goes inside a RepeatDataset: repeating is not data.
    outer = train if train['type'].endswith('RepeatDataset') else None
    data = outer['dataset'] if outer is not None else train
    evaluator = cfg.val_evaluator
    for metric in (evaluator if isinstance(evaluator, list) else [evaluator]):
        if metric.get('ann_file'):
            raise ValueError(
                f'{key}: the val_evaluator reads its ground truth from '
                f'{metric["ann_file"]}, so it cannot score a held-out part of '
                'the training set; use one that reads the data samples')
    holdout = copy.deepcopy(data)
    _replace_pipelines(holdout, cfg.val_dataloader.dataset.pipeline)
    split = dict(type='xlearner_mm.HoldoutSplit', fraction=fraction)
    data = ConfigDict(split, part='train', dataset=data)
    if outer is not None:
        outer['dataset'] = data
    else:
        cfg.train_dataloader.dataset = data
    cfg.val_dataloader.dataset = ConfigDict(
        split, part='holdout', dataset=holdout)


def _file_sha256(path: Optional[str]) -> Optional[str]:
    """The sha256 of a local file; None for no file or a URL."""
    if not path or '://' in path:
        return None
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


class TransferSuite:
    """The jobs of a suite config and what they found.

    A suite config holds (``configs/transfer/table2_r50.py`` shows them all)::

        backbones = dict(
            imagenet_supervised=dict(checkpoint='https://...resnet50_8xb32_in1k.pth'),
            xlearner=dict(checkpoint='work_dirs/export/xlearner_r50.pth'),
            xlearner_p=dict(checkpoint='work_dirs/prune_r50/iter_15000.pth',
                            kind='expanded'),
            random_init=dict(checkpoint=None))
        baseline = 'imagenet_supervised'
        reference = 'configs/transfer/paper_table2.csv'  # or None
        probe = dict(config='configs/linear_probe/avg_cls_10datasets.py',
                     expanded=dict(task='cls', out_indices=(3, )))
        finetunes = dict(
            det=dict(config='configs/downstream/faster-rcnn_...py',
                     column='PASCAL Det', metric='pascal_voc/mAP', scale=100,
                     lrs=(0.005, 0.01, 0.02, 0.04), lr_range=(0.001, 0.05),
                     holdout=0.1, gpus=8,
                     expanded=dict(task='det', norm_eval=True),
                     widths={'model.neck.in_channels': (0, 1, 2, 3)}))

    A backbone's ``kind`` (:func:`backbone_kind`) says how a job loads it:
    ``'resnet'`` through ``init_cfg=dict(type='ZooPretrained', ...)`` of the
    config's own ResNet (a None checkpoint: its random init), ``'expanded'``
    as ``PretrainedExpandedBackbone`` with the benchmark's ``expanded``
    options (overridden by the backbone's own ``expanded.<benchmark>``), its
    level widths written to the ``widths`` keys. ``scale`` turns a metric
    into the table's unit (VOCMetric's mAP is a fraction).

    Args:
        cfg (Config): The suite config.
        work_dir (str): Where the jobs and the table are written.
        launcher (str): ``'none'`` (this process), ``'pytorch'``
            (``tools/dist_train.sh``) or ``'slurm'``
            (``tools/slurm_train.sh``).
        gpus (int, optional): Processes of every fine-tune job, over the
            fine-tunes' own ``gpus``.
        partition (str, optional): The Slurm partition.
    """

    def __init__(self,
                 cfg: Config,
                 work_dir: str,
                 launcher: str = 'none',
                 gpus: Optional[int] = None,
                 partition: Optional[str] = None) -> None:
        if launcher not in LAUNCHERS:
            raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                             f'{launcher!r}')
        if launcher == 'slurm' and not partition:
            raise ValueError('the slurm launcher needs a partition')
        self.cfg = cfg
        self.work_dir = work_dir
        self.launcher = launcher
        self.gpus = gpus
        self.partition = partition
        self.backbones = dict(cfg.get('backbones') or {})
        if not self.backbones:
            raise ValueError('the suite config has no `backbones` (or give '
                             'them with --backbone NAME=CHECKPOINT)')
        if cfg.get('baseline') not in self.backbones:
            raise ValueError(f'baseline={cfg.get("baseline")!r} is not among '
                             f'the backbones {list(self.backbones)}')
        self.kinds = {
            name: backbone_kind(name, backbone)
            for name, backbone in self.backbones.items()
        }
        for name, spec in cfg.get('finetunes', {}).items():
            low, high = spec['lr_range']
            outside = [lr for lr in spec['lrs'] if not low <= lr <= high]
            if outside:
                raise ValueError(f'finetunes.{name}.lrs: {outside} lie '
                                 f'outside lr_range ({low}, {high})')

    # ---- the whole suite ----
    def run(self) -> dict:
        """Run every job not yet finished, then write the table.

        Returns:
            dict: ``table`` (:func:`build_transfer_table`'s), ``files``
            (the written Markdown, CSV and JSON) and ``search``
            (``{backbone: {benchmark: {'lrs': {lr: score}, 'lr': chosen}}}``).
        """
        results, search = {}, {}
        for name in self.backbones:
            self._claim_work_dir(name)
            results[name], search[name] = {}, {}
            if self.cfg.get('probe'):
                probe = self.run_probe(name)
                results[name][AVG_CLS] = probe['average_top1']
                results[name][PROBE_KEY] = {
                    dataset: r['top1']
                    for dataset, r in probe['datasets'].items()
                }
            for benchmark, spec in self.cfg.get('finetunes', {}).items():
                scores = {
                    lr: self.run_finetune(name, benchmark, 'search', lr)
                    for lr in spec['lrs']
                }
                # max() keeps the first of equal scores: the grid's order.
                lr = max(scores, key=scores.get)
                search[name][benchmark] = dict(lrs=scores, lr=lr)
                results[name][spec['column']] = self.run_finetune(
                    name, benchmark, 'final', lr)
        reference = self.cfg.get('reference')
        table = build_transfer_table(
            results, self.cfg.baseline,
            read_reference_rows(reference) if reference else None)
        files = write_transfer_table(table, self.work_dir)
        atomic_json_dump(
            search, osp.join(self.work_dir, 'transfer_lr_search.json'),
            indent=2)
        print_log('\n' + format_transfer_markdown(table), logger='current')
        return dict(table=table, files=files, search=search)

    def _claim_work_dir(self, name: str) -> None:
        """Tie ``<work_dir>/<name>`` to the backbone's checkpoint file: a
        rerun with another checkpoint (or the same path trained again) under
        the same name would otherwise reuse the old results."""
        path = osp.join(self.work_dir, name, BACKBONE_FILE)
        checkpoint = self.backbones[name].get('checkpoint')
        spec = dict(checkpoint=checkpoint, kind=self.kinds[name],
                    sha256=_file_sha256(checkpoint))
        if osp.isfile(path):
            with open(path) as f:
                saved = json.load(f)
            if saved != spec:
                raise ValueError(
                    f'{osp.dirname(path)} holds the results of backbone '
                    f'{saved}, not {spec}: name the backbone differently or '
                    'remove that directory')
        else:
            atomic_json_dump(spec, path, indent=2)

    # ---- the linear probe ----
    def probe_config(self, name: str) -> Config:
        """The probe config of backbone ``name``."""
        cfg = Config.fromfile(self.cfg.probe.config)
        if self.kinds[name] == 'expanded':
            cfg.backbone = ConfigDict(
                type='xlearner_mm.PretrainedExpandedBackbone',
                checkpoint=None,  # the probe's checkpoint
                **self._expanded_options(name, 'probe'))
        cfg.merge_from_dict(self.cfg.probe.get('cfg_options', {}))
        return cfg

    def run_probe(self, name: str) -> dict:
        """The linear probe of backbone ``name``: its result file's
        content (``average_top1``, ``datasets``)."""
        work_dir = osp.join(self.work_dir, name, 'probe')
        result = osp.join(work_dir, PROBE_RESULT_FILE)
        checkpoint = self.backbones[name].get('checkpoint')
        if not osp.isfile(result):
            config = self._write_config(self.probe_config(name), work_dir,
                                        'probe_config.py')
            print_log(f'transfer: {name} linear probe ({work_dir})',
                      logger='current')
            if self.launcher == 'none':
                atomic_json_dump(
                    run_linear_probe(Config.fromfile(config), checkpoint),
                    result, indent=2)
            else:
                self._run(self._command_prefix(name, 'probe', 1) + [
                    sys.executable, '-u',
                    osp.join(REPO_ROOT, 'tools', 'linear_probe.py'), config,
                    *([checkpoint] if checkpoint else []), '--work-dir',
                    work_dir, '--out', result
                ], work_dir, gpus=1)
        else:
            print_log(f'transfer: {name} linear probe is done ({result})',
                      logger='current')
        with open(result) as f:
            return json.load(f)

    # ---- the fine-tunes ----
    def finetune_config(self, name: str, benchmark: str, phase: str,
                        lr: float) -> Config:
        """The training config of one fine-tune job: the benchmark's config
        with backbone ``name``, learning rate ``lr`` and, for the search
        phase, the held-out split."""
        spec = self.cfg.finetunes[benchmark]
        key = f'finetunes.{benchmark}'
        cfg = Config.fromfile(spec['config'])
        _with_custom_import(cfg)
        checkpoint = self.backbones[name].get('checkpoint')
        if self.kinds[name] == 'expanded':
            cfg.model.backbone = ConfigDict(
                type='xlearner_mm.PretrainedExpandedBackbone',
                checkpoint=checkpoint,
                **self._expanded_options(name, benchmark))
            widths = MODELS.build(cfg.model.backbone).out_channels
            cfg.merge_from_dict({
                width_key: [widths[i] for i in levels] if isinstance(
                    levels, Sequence) else widths[levels]
                for width_key, levels in spec.get('widths', {}).items()
            })
        else:
            cfg.model.backbone.init_cfg = (
                dict(type='ZooPretrained', checkpoint=checkpoint)
                if checkpoint else None)
        if 'pretrained' in cfg.model:  # mmseg's, over the backbone's init
            cfg.model.pretrained = None
        cfg.optim_wrapper.optimizer.lr = lr
        # Every backbone starts its jobs from the same random state (the
        # config's own seed wins).
        cfg.randomness = dict(
            dict(seed=self.cfg.get('seed', 0)), **cfg.get('randomness', {}))
        # A job resumes from its last checkpoint only (the grid's jobs would
        # otherwise keep every interval's), which a kill while saving must
        # not tear.
        cfg.default_hooks.checkpoint.update(
            type='xlearner_mm.AtomicCheckpointHook', max_keep_ckpts=1)
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='xlearner_mm.FinalMetricsHook',
                 out_file=FINETUNE_RESULT_FILE)
        ]
        if phase == 'search':
            holdout_search_config(cfg, spec.get('holdout', 0.1), key)
        cfg.merge_from_dict(spec.get('cfg_options', {}))
        return cfg

    def run_finetune(self, name: str, benchmark: str, phase: str,
                     lr: float) -> float:
        """One fine-tune job (``phase`` 'search' or 'final'): its metric at
        the end of training, in the table's unit."""
        spec = self.cfg.finetunes[benchmark]
        work_dir = osp.join(self.work_dir, name, benchmark, f'{phase}_lr{lr}')
        result = osp.join(work_dir, FINETUNE_RESULT_FILE)
        job = f'{name} {benchmark} {phase} lr={lr}'
        if osp.isfile(result):
            print_log(f'transfer: {job} is done ({result})', logger='current')
        else:
            config = self._write_config(
                self.finetune_config(name, benchmark, phase, lr), work_dir,
                'transfer_job.py')
            resumes = osp.isfile(osp.join(work_dir, 'last_checkpoint'))
            print_log(
                f'transfer: {job}: {"resuming" if resumes else "starting"} '
                f'({work_dir})', logger='current')
            self._train(config, work_dir, f'{name}_{benchmark}_{phase}',
                        self.gpus or spec.get('gpus', 1))
        with open(result) as f:
            metrics = json.load(f)['metrics']
        if spec['metric'] not in metrics:
            raise KeyError(f'finetunes.{benchmark}.metric={spec["metric"]!r} '
                           f'is not among the metrics of {result}: '
                           f'{sorted(metrics)}')
        return metrics[spec['metric']] * spec.get('scale', 1)

    # ---- running ----
    def _expanded_options(self, name: str, benchmark: str) -> dict:
        spec = (self.cfg.probe if benchmark == 'probe' else
                self.cfg.finetunes[benchmark])
        options = dict(spec.get('expanded', {}))
        options.update(
            self.backbones[name].get('expanded', {}).get(benchmark, {}))
        return options

    @staticmethod
    def _write_config(cfg: Config, work_dir: str, filename: str) -> str:
        """``cfg`` as a config file of the job's work dir: what the job
        runs, also to read again."""
        os.makedirs(work_dir, exist_ok=True)
        path = osp.join(work_dir, filename)
        atomic_write_text(cfg.pretty_text, path)
        return path

    def _train(self, config: str, work_dir: str, name: str,
               gpus: int) -> None:
        """Train (or resume) the job config ``config``."""
        if self.launcher == 'none':
            cfg = load_config(config, work_dir=work_dir)
            cfg.resume, cfg.load_from = True, None
            train_in_process(cfg, name)
            return
        tools = osp.join(REPO_ROOT, 'tools')
        if self.launcher == 'pytorch':
            command = ['bash', osp.join(tools, 'dist_train.sh'), config,
                       str(gpus), '--work-dir', work_dir]
        else:
            command = self._command_prefix(name, 'train', gpus) + [
                config, work_dir]
        self._run(command + ['--resume'], work_dir, gpus)

    def _command_prefix(self, name: str, what: str, gpus: int) -> List[str]:
        """The launcher's part of a command: srun for a probe, or
        slurm_train.sh for training, under Slurm; nothing otherwise."""
        if self.launcher != 'slurm':
            return []
        if what == 'probe':
            return ['srun', '-p', self.partition, f'--job-name={name}',
                    '--gres=gpu:1', '--ntasks=1']
        return ['bash', osp.join(REPO_ROOT, 'tools', 'slurm_train.sh'),
                self.partition, name]

    @staticmethod
    def _run(command: List[str], work_dir: str, gpus: int) -> None:
        """Run a job's command, its output in ``<work_dir>/stdout.log``
        (``GPUS`` is slurm_train.sh's process count, ``PYTHON``
        dist_train.sh's interpreter)."""
        log_path = osp.join(work_dir, 'stdout.log')
        env = dict(os.environ, PYTHON=sys.executable, GPUS=str(gpus))
        with open(log_path, 'a') as log:
            returncode = subprocess.call(
                command, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=os.getcwd())
        if returncode:
            raise RuntimeError(
                f'transfer job failed (exit code {returncode}): '
                f'{" ".join(command)}; its output is in {log_path}')
