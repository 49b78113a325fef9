from .linear_probe import (DEFAULT_DATALOADER, LogisticRegression,
                           build_frozen_backbone, build_probe_dataloaders,
                           extract_features, format_probe_table,
                           lambda_grid, linear_probe, run_linear_probe,
                           select_lambda, stratified_holdout)

__all__ = [
    'DEFAULT_DATALOADER', 'LogisticRegression', 'build_frozen_backbone',
    'build_probe_dataloaders', 'extract_features', 'format_probe_table',
    'lambda_grid', 'linear_probe', 'run_linear_probe', 'select_lambda',
    'stratified_holdout'
]
