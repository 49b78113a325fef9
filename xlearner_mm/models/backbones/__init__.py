from .expanded_backbone import ExpandedBackbone

__all__ = ['ExpandedBackbone']
