from .source_mix_sampler import SourceMixSampler

__all__ = ['SourceMixSampler']
