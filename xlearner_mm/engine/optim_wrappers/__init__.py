from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .task_optim_wrapper_constructor import (TaskOptimWrapperConstructor,
                                             check_custom_keys)

__all__ = [
    'CPUAmpOptimWrapper', 'TaskOptimWrapperConstructor', 'check_custom_keys'
]
