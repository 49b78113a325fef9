# Copyright (c) OpenMMLab. All rights reserved.
# Adapted from mmdet 3.3's tools/train.py.
"""What ``tools/train.py``, ``tools/test.py`` and the other tools do to a
config before they run it: the shared command-line options, the config with
its overrides, mixed precision, and distributed runs without CUDA."""
import argparse
import gc
import os
import os.path as osp
import time
from typing import Optional, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from xlearner_mm.registry import MODELS
from xlearner_mm.structures import read_checkpoint
from xlearner_mm.utils import register_all_modules


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Add the options every tool that runs a Runner takes
    (``--cfg-options``, ``--launcher``, ``--local-rank``), parse the command
    line, and export LOCAL_RANK for the launcher."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch>=2.0's launcher passes `--local-rank` instead of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                launcher: Optional[str] = None,
                work_dir: Optional[str] = None,
                work_dirs: str = './work_dirs') -> Config:
    """The config file ``config`` with ``launcher`` set, then
    ``cfg_options`` (``--cfg-options``) merged, and ``work_dir`` in this
    priority: ``work_dir`` (``--work-dir``) > the config's own >
    ``work_dirs``/<config file name>.

    Args:
        config (str): The config file.
        cfg_options (dict, optional): Overrides, as ``DictAction`` parses
            them.
        launcher (str, optional): ``cfg.launcher``; left as the config has
            it when None.
        work_dir (str, optional): The work_dir, over the config's.
        work_dirs (str): Where a config without work_dir works, in a folder
            named after the config file. Defaults to ``'./work_dirs'``.
    """
    cfg = Config.fromfile(config)
    if launcher is not None:
        cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join(work_dirs,
                                osp.splitext(osp.basename(config))[0])
    return cfg


def load_trained_model(config: str,
                       checkpoint: str,
                       cfg_options: Optional[dict] = None
                       ) -> Tuple[torch.nn.Module, dict]:
    """``(model, checkpoint dict)``: the ``model`` of the config file
    ``config`` (with ``cfg_options`` merged) loaded strictly from
    ``checkpoint`` (read safely, :func:`read_checkpoint`).

    No ``init_weights``: every weight comes from the checkpoint, and
    pretrained ``init_cfg`` entries are not fetched.
    """
    ckpt = read_checkpoint(checkpoint)
    cfg = load_config(config, cfg_options)
    register_all_modules(init_default_scope=False)
    model = MODELS.build(cfg.model)
    try:
        model.load_state_dict(ckpt['state_dict'], strict=True)
    except RuntimeError as error:
        raise RuntimeError(f'{checkpoint} does not fit the model of '
                           f'{config}: {error}') from error
    return model, ckpt


def build_runner(cfg: Config) -> Runner:
    """The Runner of ``cfg``: mmengine's default one, or the registered
    ``runner_type`` when the config names one."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def train_in_process(cfg: Config, name: str) -> None:
    """Train ``cfg`` in a Runner of its own, in this process, as one of a
    series of runs (the stages of a recipe, the jobs of a transfer suite).

    mmengine keeps loggers, message hubs and visualizers by name, so the run
    is named ``<name>_<time>``, which no other run of the process has.
    """
    cfg.experiment_name = f'{name}_{time.strftime("%Y%m%d_%H%M%S")}'
    if 'visualizer' in cfg:
        cfg.visualizer.name = cfg.experiment_name
    runner = build_runner(cfg)
    runner.train()
    # The Runner sits in reference cycles; its dataloader workers and
    # memory are freed before the next run starts.
    del runner
    gc.collect()


def setup_amp(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision.

    mmengine 0.10.7's AmpOptimWrapper asserts a GPU (or an NPU, MLU or MUSA
    device) and scales the loss with a CUDA GradScaler; without one, the
    forward runs in CPU bfloat16 autocast through CPUAmpOptimWrapper, which
    needs no loss scaling (bfloat16 has float32's exponent range).
    """
    if (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available()):
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        print('No GPU: --amp trains in bfloat16 CPU autocast '
              '(CPUAmpOptimWrapper).')
        cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)


def _names_sync_bn(cfg) -> bool:
    """Whether a (model) config has a norm layer of type SyncBN."""
    if isinstance(cfg, dict):
        return cfg.get('type') in ('SyncBN', 'MMSyncBN') or any(
            _names_sync_bn(v) for v in cfg.values())
    if isinstance(cfg, (list, tuple)):
        return any(_names_sync_bn(v) for v in cfg)
    return False


def setup_cpu_distributed(cfg: Config) -> None:
    """Let a distributed launch run on a machine without CUDA.

    nccl needs CUDA, so the backend becomes gloo. mmengine 0.10.7 needs more
    for a ``pytorch`` (torchrun) launch: its ``init_dist`` calls
    ``torch.cuda.set_device``, so the process group is initialized here (the
    Runner then skips ``init_dist``), and its default model wrapper passes
    ``device_ids=[LOCAL_RANK]``, which DistributedDataParallel refuses for a
    CPU model, so the wrapper gets ``device_ids=None``. (``slurm`` and
    ``mpi`` launches still need CUDA in mmengine's ``init_dist``.)
    """
    if cfg.get('sync_bn') or _names_sync_bn(cfg.get('model')):
        raise RuntimeError(
            'The config uses SyncBN (a norm_cfg of type SyncBN/MMSyncBN or '
            'sync_bn), whose kernels need CUDA: torch\'s SyncBatchNorm refuses '
            'CPU tensors in a process group. Use BN for a multi-process CPU '
            'run.')
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        print('CUDA is not available: using the gloo distributed backend '
              'instead of nccl.')
        dist_cfg['backend'] = 'gloo'
    if cfg.launcher != 'pytorch':
        return
    # A process that runs several Runners (a recipe's stages) joins once.
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=dist_cfg['backend'])
    wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg
