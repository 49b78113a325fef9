from .guidance_layer import GuidanceLayer, hint_loss

__all__ = ['GuidanceLayer', 'hint_loss']
