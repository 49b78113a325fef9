from .export import (export_backbone, layout_of_config, load_expanded_export,
                     resnet_layout, stock_configs_fitted)
from .pruning import prune_checkpoint
from .runner_setup import (load_config, parse_runner_args, setup_amp,
                           setup_cpu_distributed)

__all__ = [
    'export_backbone', 'layout_of_config', 'load_config',
    'load_expanded_export', 'parse_runner_args', 'prune_checkpoint',
    'resnet_layout', 'setup_amp', 'setup_cpu_distributed',
    'stock_configs_fitted'
]
