from .magnitude_pruning import (DEFAULT_PRUNABLE, MagnitudePruner, apply_masks,
                                count_kept, format_report, mask_gradients,
                                masked_weights, prunable_weights,
                                sparsity_report, stream_weight_count)

__all__ = [
    'DEFAULT_PRUNABLE', 'MagnitudePruner', 'apply_masks', 'count_kept',
    'format_report', 'mask_gradients', 'masked_weights', 'prunable_weights',
    'sparsity_report', 'stream_weight_count'
]
