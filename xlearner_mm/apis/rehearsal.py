"""Rehearse a recipe before booking GPUs for it (``tools/rehearse.py``):
its training stages in order on synthetic data of the sources' real sizes
and classes (:func:`rehearsal_config`), each stopped halfway and resumed,
then the export, then one iteration of each fine-tune of the transfer
suite on the export; what each stage costs is measured
(:class:`IterationCostHook`) and projected to the whole recipe
(:mod:`.rehearsal_report`)."""
import copy
import json
import os
import os.path as osp
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.dist import get_world_size, is_main_process
from mmengine.logging import print_log

from xlearner_mm.utils import atomic_json_dump
from .recipe import export_stage, recipe_stages
from .rehearsal_config import rehearsal_config
from .rehearsal_report import format_report, source_mix_rows, stage_costs
from .runner_setup import (load_config, setup_amp, setup_cpu_distributed,
                           train_in_process)
from .transfer import TransferSuite

#: The transfer suite whose fine-tunes run on the export.
DEFAULT_SUITE = 'configs/transfer/table2_r50.py'
#: The cost files of the two halves of a stage (IterationCostHook).
COST_FILES = ('iteration_cost_first.json', 'iteration_cost_resumed.json')
REPORT_FILE = 'rehearsal.json'


def _stages_of(config: str):
    """``(stages, export stage)``: a recipe config's stages, or a training
    config as a recipe of one stage."""
    if 'stages' in Config.fromfile(config):
        stages, export = recipe_stages(config)
        return stages, export or stages[-1]['name']
    name = osp.splitext(osp.basename(config))[0]
    return [dict(name=name, config=config, inputs={})], name


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


class Rehearsal:
    """The rehearsal of one recipe.

    Args:
        config (str): A recipe config (with ``stages``, as
            configs/xlearner/xlearner_r_r50.py) or a training config.
        work_dir (str): Stages write to ``<work_dir>/<stage>`` (a stage
            whose final checkpoint and cost file are there already is not
            run again, as in :func:`run_recipe`), the export
            to ``<work_dir>/export``, the fine-tunes to
            ``<work_dir>/downstream/<benchmark>``.
        iters (int): Training iterations of each stage. Defaults to 4.
        img_scale (float): The configs' image sizes are multiplied by it.
            Defaults to 1 (the real sizes).
        resume (bool): Stop each stage after ``iters // 2`` iterations and
            resume it. Defaults to True.
        amp (bool): Mixed precision, as ``tools/train.py --amp``.
        launcher (str): ``'none'`` or ``'pytorch'`` (one process per rank,
            e.g. started by torchrun).
        suite (str, optional): The transfer suite config whose fine-tunes
            run one iteration on the export; None runs none.
        tflops (float): The accelerator throughput the projection assumes,
            in dense TFLOP/s achieved.
        num_workers (int, optional): Dataloader workers of every training
            loader; None keeps the configs' own.
    """

    def __init__(self,
                 config: str,
                 work_dir: str,
                 iters: int = 4,
                 img_scale: float = 1.0,
                 resume: bool = True,
                 amp: bool = False,
                 launcher: str = 'none',
                 suite: Optional[str] = DEFAULT_SUITE,
                 tflops: float = 50.0,
                 num_workers: Optional[int] = None) -> None:
        if iters < (2 if resume else 1):
            raise ValueError(f'iters={iters}: a resumed rehearsal needs at '
                             'least 2 iterations')
        if img_scale <= 0:
            raise ValueError(f'img_scale must be positive, got {img_scale}')
        self.config = config
        self.work_dir = work_dir
        self.iters = iters
        self.img_scale = img_scale
        self.resume = resume
        self.amp = amp
        self.launcher = launcher
        self.suite = suite
        self.tflops = tflops
        self.num_workers = num_workers
        self.stages, self.export_stage = _stages_of(config)

    def run(self) -> dict:
        """Run every stage, the export and the fine-tunes; return (and, on
        the main process, write to ``<work_dir>/rehearsal.json``) the
        report."""
        checkpoints, rows = {}, []
        for stage in self.stages:
            cfg = load_config(
                stage['config'],
                cfg_options={
                    key: checkpoints[name]
                    for key, name in stage['inputs'].items()
                },
                launcher=self.launcher)
            row, checkpoints[stage['name']] = self._train(
                stage['name'], cfg, osp.join(self.work_dir, stage['name']),
                self.iters, self.resume, num_gpus=cfg.get('num_gpus', 1))
            rows.append(row)
        export, kind = self._export(checkpoints[self.export_stage])
        if self.suite:
            rows += self._downstream(export, kind)
        report = dict(
            config=self.config,
            iters=self.iters,
            img_scale=self.img_scale,
            resume=self.resume,
            amp=self.amp,
            world_size=get_world_size(),
            tflops=self.tflops,
            device='cuda' if torch.cuda.is_available() else 'cpu',
            torch=torch.__version__,
            export=export,
            stages=rows)
        if is_main_process():
            atomic_json_dump(report, osp.join(self.work_dir, REPORT_FILE))
            print(format_report(report))
        return report

    def _train(self, name: str, cfg: Config, work_dir: str, iters: int,
               resume: bool, num_gpus: int):
        """Train one stage's rehearsal (in two halves with ``resume``);
        returns its report row and final checkpoint."""
        if self.amp:
            setup_amp(cfg)
        distributed = cfg.get('launcher', 'none') != 'none'
        cpu_distributed = distributed and not torch.cuda.is_available()
        stop_at = iters // 2 if resume else None
        first, plan = rehearsal_config(
            cfg, iters, self.img_scale, work_dir, stop_at=stop_at,
            cost_file=COST_FILES[0], num_workers=self.num_workers,
            sync_bn_to_bn=cpu_distributed)
        if cpu_distributed:
            setup_cpu_distributed(first)
        for note in plan['notes']:
            print_log(f'rehearsal {name}: {note}', logger='current')
        checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
        _barrier()  # every rank sees the same files
        done = osp.isfile(checkpoint) and osp.isfile(
            osp.join(work_dir, COST_FILES[0]))
        if done:
            # as run_recipe: a stage rehearsed before is not run again
            print_log(f'rehearsal {name}: done before ({checkpoint})',
                      logger='current')
        else:
            train_in_process(first, f'rehearsal_{name}')
        if resume and not done:
            _barrier()  # the checkpoint to resume from is written
            second, _ = rehearsal_config(
                cfg, iters, self.img_scale, work_dir, cost_file=COST_FILES[1],
                num_workers=self.num_workers,
                sync_bn_to_bn=cpu_distributed)
            if cpu_distributed:
                setup_cpu_distributed(second)
            second.resume, second.load_from = True, None
            train_in_process(second, f'rehearsal_{name}_resumed')
        _barrier()  # the main process has written the checkpoint
        if not osp.isfile(checkpoint):
            raise RuntimeError(f'rehearsal {name}: no final checkpoint '
                               f'{checkpoint}')
        costs = [_read_json(osp.join(work_dir, f)) for f in COST_FILES]
        row = dict(
            stage=name,
            config=cfg.filename,
            checkpoint=checkpoint,
            checkpoint_bytes=os.path.getsize(checkpoint),
            max_iters=plan['max_iters'],
            tau=plan['tau'],
            num_gpus=num_gpus,
            notes=plan['notes'],
            sources=source_mix_rows(cfg, plan['sources'], num_gpus)
            if plan['multi_task'] else [],
            **stage_costs([c for c in costs if c]))
        return row, checkpoint

    def _export(self, checkpoint: str) -> Tuple[str, str]:
        """The export of the recipe's evaluated stage (a plain backbone, or
        the whole expanded model), written by the main process; returns its
        path and kind."""
        out_dir = osp.join(self.work_dir, 'export')
        meta_file = osp.join(out_dir, 'export.json')
        if is_main_process():
            out, kind = export_stage(checkpoint, out_dir)
            atomic_json_dump(dict(path=out, kind=kind), meta_file)
        _barrier()
        meta = _read_json(meta_file)
        return meta['path'], meta['kind']

    def _downstream(self, export: str, kind: str) -> List[dict]:
        """One iteration of each fine-tune of the suite on the export (of
        ``kind``, as :func:`export_stage` says)."""
        suite_cfg = Config.fromfile(self.suite)
        suite_cfg.backbones = dict(
            rehearsal=dict(checkpoint=osp.abspath(export), kind=kind))
        suite_cfg.baseline = 'rehearsal'
        suite = TransferSuite(suite_cfg, osp.join(self.work_dir,
                                                  'downstream'))
        rows = []
        for benchmark, spec in suite_cfg.finetunes.items():
            cfg = suite.finetune_config('rehearsal', benchmark, 'final',
                                        spec['lrs'][0])
            cfg.launcher = self.launcher
            row, _ = self._train(
                f'downstream_{benchmark}', copy.deepcopy(cfg),
                osp.join(self.work_dir, 'downstream', benchmark), 1, False,
                num_gpus=spec.get('gpus', 1))
            rows.append(row)
        return rows
