from .reconciliation_neck import ReconciliationLayer, ReconciliationNeck

__all__ = ['ReconciliationLayer', 'ReconciliationNeck']
