from .data_check import (SourceCount, check_data, count_source,
                         format_data_report)
from .holdout_split import HoldoutSplit
from .multi_source_dataset import MultiSourceDataset
from .samplers import SourceMixSampler
from .synthetic_source import SyntheticSource

__all__ = [
    'HoldoutSplit', 'MultiSourceDataset', 'SourceCount', 'SourceMixSampler', 'SyntheticSource',
    'check_data',
    'count_source', 'format_data_report'
]
