from .magnitude_pruning_hook import MagnitudePruningHook
from .random_state_hook import RandomStateHook
from .reconciliation_switch_hook import ReconciliationSwitchHook

__all__ = [
    'MagnitudePruningHook', 'RandomStateHook', 'ReconciliationSwitchHook'
]
