from .export import (export_backbone, layout_of_config, load_expanded_export,
                     resnet_layout, stock_configs_fitted)
from .param_count import ParamRow, count_params, format_counts
from .recipe import recipe_stages, run_recipe

__all__ = [
    'ParamRow', 'count_params', 'export_backbone', 'format_counts',
    'layout_of_config', 'load_expanded_export', 'recipe_stages',
    'resnet_layout', 'run_recipe', 'stock_configs_fitted'
]
