from .multi_source_dataset import MultiSourceDataset
from .samplers import SourceMixSampler

__all__ = ['MultiSourceDataset', 'SourceMixSampler']
