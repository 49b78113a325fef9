from .multi_source_heads import (MultiSourceClsHead, MultiSourceDecodeHead,
                                 MultiSourceRoIHead)

__all__ = ['MultiSourceClsHead', 'MultiSourceDecodeHead', 'MultiSourceRoIHead']
