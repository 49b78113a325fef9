from .atomic_io import (atomic_json_dump, atomic_torch_save,
                        atomic_write_bytes, atomic_write_text)
from .checkpoint_safety import allow_mmengine_checkpoint_globals
from .model_wrappers import unwrap_model
from .process_group import releasing_process_group
from .setup_env import register_all_modules
from .text_table import format_table, markdown_table

__all__ = [
    'allow_mmengine_checkpoint_globals', 'atomic_json_dump',
    'atomic_torch_save', 'atomic_write_bytes', 'atomic_write_text',
    'format_table', 'markdown_table', 'register_all_modules', 'releasing_process_group', 'unwrap_model'
]
