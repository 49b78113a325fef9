"""xlearner_mm: X-Learner (ECCV 2022) as an OpenMMLab plugin."""
from . import registry  # noqa: F401  (creates the 'xlearner_mm' scope)
from .utils.checkpoint_safety import allow_mmengine_checkpoint_globals
from .version import __version__

# Resuming an mmengine Runner must work on torch>=2.6 from the moment the
# package is imported (configs import it through ``custom_imports`` too).
allow_mmengine_checkpoint_globals()

__all__ = ['__version__']
