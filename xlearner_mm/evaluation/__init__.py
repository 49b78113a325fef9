from .linear_probe import (DEFAULT_DATALOADER, LogisticRegression,
                           build_frozen_backbone, build_probe_dataloaders,
                           extract_features, format_probe_table,
                           lambda_grid, linear_probe, run_linear_probe,
                           select_lambda, stratified_holdout)
from .transfer_table import (build_transfer_table, format_transfer_markdown,
                             read_reference_rows, write_transfer_table)

__all__ = [
    'DEFAULT_DATALOADER', 'LogisticRegression', 'build_frozen_backbone',
    'build_probe_dataloaders', 'build_transfer_table', 'extract_features',
    'format_probe_table', 'format_transfer_markdown', 'lambda_grid',
    'linear_probe', 'read_reference_rows', 'run_linear_probe',
    'select_lambda', 'stratified_holdout', 'write_transfer_table'
]
