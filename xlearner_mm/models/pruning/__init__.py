from .magnitude_pruning import (DEFAULT_PRUNABLE, MagnitudePruner, apply_masks,
                                format_report, mask_gradients,
                                prunable_weights, sparsity_report,
                                stream_weight_count)

__all__ = [
    'DEFAULT_PRUNABLE', 'MagnitudePruner', 'apply_masks', 'format_report',
    'mask_gradients', 'prunable_weights', 'sparsity_report',
    'stream_weight_count'
]
