from .multi_task_loops import (DataLoaderGroup, MultiTaskDataLoader,
                               MultiTaskIterBasedTrainLoop, MultiTaskTestLoop,
                               MultiTaskValLoop)

__all__ = [
    'DataLoaderGroup', 'MultiTaskDataLoader', 'MultiTaskIterBasedTrainLoop',
    'MultiTaskValLoop', 'MultiTaskTestLoop'
]
