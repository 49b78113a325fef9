from .export import (export_backbone, load_checkpoint_file,
                     load_expanded_export, parse_config_text, resnet_layout,
                     stock_configs_fitted, task_sources)
from .pruning import prune_checkpoint
from .runner_setup import (load_config, parse_runner_args, setup_amp,
                           setup_cpu_distributed)

__all__ = [
    'export_backbone', 'load_checkpoint_file', 'load_config',
    'load_expanded_export', 'parse_config_text', 'parse_runner_args',
    'prune_checkpoint', 'resnet_layout', 'setup_amp', 'setup_cpu_distributed',
    'stock_configs_fitted', 'task_sources'
]
