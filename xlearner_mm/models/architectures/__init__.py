from .xlearner import MultiTaskDataPreprocessor, TaskStream, XLearner

__all__ = ['MultiTaskDataPreprocessor', 'TaskStream', 'XLearner']
