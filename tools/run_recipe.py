"""Run a recipe config's training stages one after the other, then export
its final model (X-Learner_r: teachers, HalfResNet students, Expansion).

    python tools/run_recipe.py configs/xlearner/xlearner_r_r50.py \
        --work-dir work_dirs/xlearner_r_r50
    torchrun --nproc_per_node 8 tools/run_recipe.py CONFIG --work-dir DIR \
        --launcher pytorch

Each stage trains in its own Runner under <work-dir>/<stage>; a stage whose
final checkpoint exists is skipped. See xlearner_mm/apis/recipe.py.
"""
import argparse

# Imported before any checkpoint is read: it allow-lists the classes
# mmengine stores in checkpoints for torch>=2.6's weights_only loading.
import xlearner_mm  # noqa: F401,I001

from xlearner_mm.apis import run_recipe
from xlearner_mm.utils import releasing_process_group


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='recipe config (with `stages`)')
    parser.add_argument('--work-dir', required=True,
                        help='the stages write to <work-dir>/<stage name>')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher of every stage')
    args = parser.parse_args(argv)
    result = run_recipe(args.config, args.work_dir, args.launcher)
    for stage, checkpoint in result['checkpoints'].items():
        print(f'{stage}: {checkpoint}')
    if result['export']:
        print(f'export (expanded backbone + reconciliation): '
              f'{result["export"]}')
    return result


if __name__ == '__main__':
    with releasing_process_group():
        main()
