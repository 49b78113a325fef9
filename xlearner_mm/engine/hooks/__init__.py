from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .checkpoint_consistency_hook import CheckpointConsistencyHook
from .data_model_consistency_hook import (DataModelConsistencyHook,
                                          check_data_model_consistency)
from .final_metrics_hook import FinalMetricsHook
from .iteration_cost_hook import IterationCostHook, cost_streams
from .magnitude_pruning_hook import MagnitudePruningHook
from .random_state_hook import RandomStateHook
from .reconciliation_switch_hook import ReconciliationSwitchHook
from .stop_training_hook import StopTrainingHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'CheckpointConsistencyHook',
    'DataModelConsistencyHook', 'FinalMetricsHook', 'IterationCostHook',
    'MagnitudePruningHook', 'RandomStateHook', 'ReconciliationSwitchHook',
    'StopTrainingHook', 'check_data_model_consistency', 'cost_streams'
]
