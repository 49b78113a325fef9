"""Pictures of a run: loss curves and iteration times from its logs, what
reconciliation adds in a trained Expansion model, a source's training
samples, and TensorBoard tags grouped by task (docs/pictures.md)."""
from .dataset_browser import browse_source, source_dataset
from .log_analysis import (CURVES_SIZE, DPI, default_curve_keys, find_scalars,
                           format_train_time, load_scalars, loss_groups,
                           plot_curves, train_time_stats)
from .reconciliation import (FEATMAP_TILE, HEATMAP_SIZE, ReconciliationPass,
                             contribution_grid, draw_feature_maps,
                             image_inputs, plot_contributions,
                             reconciliation_contributions, run_reconciliation)
from .vis_backend import MultiTaskTensorboardVisBackend, tensorboard_tag

__all__ = [
    'CURVES_SIZE', 'DPI', 'FEATMAP_TILE', 'HEATMAP_SIZE',
    'MultiTaskTensorboardVisBackend', 'ReconciliationPass', 'browse_source',
    'contribution_grid', 'default_curve_keys', 'draw_feature_maps',
    'find_scalars', 'format_train_time', 'image_inputs', 'load_scalars',
    'loss_groups', 'plot_contributions', 'plot_curves',
    'reconciliation_contributions', 'run_reconciliation', 'source_dataset',
    'tensorboard_tag', 'train_time_stats'
]
