from .expanded_backbone import ExpandedBackbone, as_levels, probe_levels
from .half_resnet import HalfResNet, scaled_width
from .pretrained_expanded import COMBINES, PretrainedExpandedBackbone

__all__ = [
    'COMBINES', 'ExpandedBackbone', 'HalfResNet',
    'PretrainedExpandedBackbone', 'as_levels', 'probe_levels', 'scaled_width'
]
