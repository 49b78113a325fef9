from .reconciliation_neck import (ReconciliationLayer, ReconciliationLink,
                                  ReconciliationNeck)

__all__ = ['ReconciliationLayer', 'ReconciliationLink', 'ReconciliationNeck']
