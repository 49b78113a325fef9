from torch import nn

from xlearner_mm.utils.compat import module_apply


class FrozenTeacherMixin:
    """Holds a frozen, pretrained teacher outside the module tree.

    ``nn.Module`` registers every module assigned to an attribute; the
    teacher is kept in a tuple instead, so that:

    - it is not in ``parameters()``: no optimizer param group holds it, and
      DistributedDataParallel neither broadcasts nor reduces it (every rank
      loads the same checkpoint);
    - it is not in ``state_dict()``: checkpoints carry only what trains, and
      the teacher is reloaded from its own checkpoint when the model is
      built;
    - ``train()``, ``init_weights()`` and SyncBN conversion do not reach it,
      so it stays in eval mode with its pretrained weights.

    Device and dtype moves (``to``, ``cuda``, ``double``, ...) are passed on
    to it. Used by :class:`MultiTaskDistiller` (the Expansion model) and
    :class:`HintTeacher` (an X-Learner++ single-task teacher).
    """

    def hold_teacher(self, teacher: nn.Module) -> None:
        """Freeze ``teacher`` (no gradients, eval mode) and hold it."""
        teacher.requires_grad_(False)
        teacher.eval()
        self._teacher = (teacher, )

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher."""
        return self._teacher[0]

    def _apply(self, fn, *args, **kwargs):
        # torch's one step for every device and dtype move (see
        # xlearner_mm.utils.compat.module_apply).
        if hasattr(self, '_teacher'):
            module_apply(self.teacher, fn, *args, **kwargs)
        return module_apply(super(), fn, *args, **kwargs)
