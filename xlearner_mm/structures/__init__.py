from .task_layout import (TaskLayout, build_expanded, read_checkpoint,
                          strip_ddp_prefix, without_init_cfg)

__all__ = [
    'TaskLayout', 'build_expanded', 'read_checkpoint', 'strip_ddp_prefix',
    'without_init_cfg'
]
