"""Recipes whose stages are separate training runs, run one after the
other (``tools/run_recipe.py``): X-Learner_r's teachers, students and final
Expansion Stage (``configs/xlearner/xlearner_r_r50.py``)."""
import os.path as osp
from typing import List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from xlearner_mm.utils import atomic_torch_save
from .export import export_backbone
from .runner_setup import load_config, train_in_process

#: The file names of a recipe's export, by what it holds.
EXPORT_FILES = dict(resnet='backbone.pth', expanded='expanded.pth')


def export_stage(checkpoint: str, out_dir: str) -> Tuple[str, str]:
    """Export a recipe's final checkpoint (:func:`export_backbone`) to
    ``<out_dir>/backbone.pth`` when it is one plain backbone (a Squeeze
    student, a Hard-sharing stream) or ``<out_dir>/expanded.pth`` when it is
    the whole expanded model (X-Learner_p, X-Learner_r).

    Returns:
        tuple: ``(path, kind)``, ``kind`` ``'resnet'`` or ``'expanded'``
        as the transfer suite's backbones name them.
    """
    exported = export_backbone(checkpoint)
    kind = 'resnet' if 'resnet' in exported['meta'] else 'expanded'
    out = osp.join(out_dir, EXPORT_FILES[kind])
    atomic_torch_save(exported, out)
    return out, kind


def recipe_stages(config: str) -> Tuple[List[dict], Optional[str]]:
    """The stages of a recipe config and the stage it exports.

    A recipe config holds ``stages``, ``{name: dict(config=..., inputs=...)}``
    in the order the stages run: ``config`` is the stage's training config
    (relative to the working directory, so that a recipe inheriting another
    re-points single stages, as configs/demo/xlearner_r_demo.py does), and
    ``inputs`` (``{config key: stage name}``) hands the final checkpoint of
    an earlier stage to a config key of this one. ``export`` names the
    stage whose final checkpoint is exported whole, or is None.

    Returns:
        tuple: ``([dict(name, config, inputs)], export)``.

    Raises:
        KeyError / ValueError: naming the recipe's key at fault.
    """
    cfg = Config.fromfile(config)
    if not isinstance(cfg.get('stages'), dict):
        raise KeyError(f'{config} has no `stages` dict: it is no recipe config')
    stages = []
    for name, stage in cfg.stages.items():
        if 'config' not in stage:
            raise KeyError(f'{config}: stages.{name} has no `config`')
        inputs = dict(stage.get('inputs') or {})
        earlier = [s['name'] for s in stages]
        unknown = sorted(set(inputs.values()) - set(earlier))
        if unknown:
            raise ValueError(
                f'{config}: stages.{name}.inputs reads stages {unknown}, '
                f'which do not run before it (earlier stages: {earlier})')
        stages.append(dict(name=name, config=stage['config'], inputs=inputs))
    export = cfg.get('export')
    if export is not None and export not in cfg.stages:
        raise ValueError(f'{config}: export={export!r} is not among the '
                         f'stages {list(cfg.stages)}')
    return stages, export


def run_recipe(config: str, work_dir: str, launcher: str = 'none') -> dict:
    """Run the stages of a recipe config one after the other, each in its
    own Runner and work_dir (``<work_dir>/<stage name>``), then export the
    ``export`` stage to ``<work_dir>/export/`` (:func:`export_stage`).

    A stage's final checkpoint (``iter_<max_iters>.pth``) is set in the
    config keys that read it (``inputs``) before those stages are built. A
    stage whose work_dir already holds its final checkpoint is not run
    again, so an interrupted chain continues with the stage it stopped in
    (start that stage anew, or resume it with ``tools/train.py --resume``).

    Args:
        config (str): The recipe config.
        work_dir (str): Where the stages write.
        launcher (str): mmengine's launcher of every stage's Runner
            (``'none'``, ``'pytorch'``, ``'slurm'``, ``'mpi'``).

    Returns:
        dict: ``checkpoints`` ({stage: final checkpoint}) and ``export``
        (the export's path, or None).
    """
    stages, export = recipe_stages(config)
    recipe = osp.splitext(osp.basename(config))[0]
    checkpoints = {}
    for stage in stages:
        stage_dir = osp.join(work_dir, stage['name'])
        cfg = load_config(
            stage['config'],
            cfg_options={
                key: checkpoints[name]
                for key, name in stage['inputs'].items()
            },
            launcher=launcher,
            work_dir=stage_dir)
        final = osp.join(stage_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
        if osp.isfile(final):
            print_log(f'{recipe}: stage {stage["name"]} is done ({final})',
                      logger='current')
        else:
            train_in_process(cfg, f'{recipe}_{stage["name"]}')
        checkpoints[stage['name']] = final
    out = None
    if export is not None:
        out, _ = export_stage(checkpoints[export],
                              osp.join(work_dir, 'export'))
    return dict(checkpoints=checkpoints, export=out)

