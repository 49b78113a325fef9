from .expansion_teacher import ExpansionTeacher
from .frozen_teacher import FrozenTeacherMixin
from .guidance_layer import GuidanceLayer, hint_loss
from .hint_teacher import HintTeacher
from .multi_task_distiller import MultiTaskDistiller

__all__ = [
    'ExpansionTeacher', 'FrozenTeacherMixin', 'GuidanceLayer', 'HintTeacher',
    'MultiTaskDistiller', 'hint_loss'
]
