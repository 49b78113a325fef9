from .export import (export_backbone, layout_of_config, load_expanded_export,
                     resnet_layout, stock_configs_fitted)

__all__ = [
    'export_backbone', 'layout_of_config', 'load_expanded_export',
    'resnet_layout', 'stock_configs_fitted'
]
