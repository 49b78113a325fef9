from .export import (export_backbone, layout_of_config, load_expanded_export,
                     resnet_layout, stock_configs_fitted)
from .param_count import ParamRow, count_params, format_counts
from .pruning import prune_checkpoint
from .recipe import recipe_stages, run_recipe
from .rehearsal import Rehearsal
from .rehearsal_config import rehearsal_config
from .runner_setup import (build_runner, load_config, load_trained_model,
                           parse_runner_args, setup_amp,
                           setup_cpu_distributed, train_in_process)
from .transfer import TransferSuite, parse_backbone_arg

__all__ = [
    'ParamRow', 'Rehearsal', 'TransferSuite', 'build_runner', 'count_params',
    'export_backbone', 'format_counts', 'layout_of_config', 'load_config',
    'load_expanded_export', 'load_trained_model', 'parse_backbone_arg',
    'parse_runner_args', 'prune_checkpoint', 'recipe_stages', 'rehearsal_config',
    'resnet_layout', 'run_recipe', 'setup_amp', 'setup_cpu_distributed',
    'stock_configs_fitted', 'train_in_process'
]
