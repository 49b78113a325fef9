from .expansion_teacher import ExpansionTeacher
from .frozen_teacher import FrozenTeacherMixin
from .guidance_layer import HINT_REDUCTIONS, GuidanceLayer, hint_loss
from .hint_teacher import HintTeacher
from .multi_task_distiller import MultiTaskDistiller, build_guidance

__all__ = [
    'ExpansionTeacher', 'FrozenTeacherMixin', 'GuidanceLayer',
    'HINT_REDUCTIONS', 'HintTeacher', 'MultiTaskDistiller', 'build_guidance',
    'hint_loss'
]
