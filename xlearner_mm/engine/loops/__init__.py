from .multi_task_loops import (DataLoaderGroup, MultiTaskIterBasedTrainLoop,
                               MultiTaskTestLoop, MultiTaskValLoop)

__all__ = [
    'DataLoaderGroup', 'MultiTaskIterBasedTrainLoop', 'MultiTaskValLoop',
    'MultiTaskTestLoop'
]
