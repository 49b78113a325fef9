from .expanded_backbone import ExpandedBackbone, as_levels, probe_levels

__all__ = ['ExpandedBackbone', 'as_levels', 'probe_levels']
