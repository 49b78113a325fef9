from .export import (export_backbone, load_checkpoint_file,
                     load_expanded_export, parse_config_text, resnet_layout,
                     stock_configs_fitted, task_sources)

__all__ = [
    'export_backbone', 'load_checkpoint_file', 'load_expanded_export',
    'parse_config_text', 'resnet_layout', 'stock_configs_fitted',
    'task_sources'
]
