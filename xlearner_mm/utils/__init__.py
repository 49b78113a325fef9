from .atomic_io import atomic_json_dump, atomic_torch_save
from .checkpoint_safety import allow_mmengine_checkpoint_globals
from .setup_env import register_all_modules

__all__ = [
    'allow_mmengine_checkpoint_globals', 'atomic_json_dump',
    'atomic_torch_save', 'register_all_modules'
]
