from .xlearner import (DEFAULT_NECK, MultiTaskDataPreprocessor, TaskStream,
                       XLearner, build_data_preprocessor, task_features)

__all__ = [
    'DEFAULT_NECK', 'MultiTaskDataPreprocessor', 'TaskStream', 'XLearner',
    'build_data_preprocessor', 'task_features'
]
