from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from xlearner_mm.registry import HOOKS


@HOOKS.register_module()
class ReconciliationSwitchHook(Hook):
    """Algorithm 1's step threshold tau.

    For the first ``tau`` iterations the sub-backbones train separately
    (reconciliation off); from iteration ``tau`` on they train jointly with
    the reconciliation layers. The phase is derived from ``runner.iter``
    before every iteration, so it is right after a resume, and reconciliation
    is switched on when training ends, since the expanded backbone is used
    with it (Squeeze Stage, export).

    Args:
        tau (int): Number of iterations without reconciliation.
    """

    priority = 'NORMAL'

    def __init__(self, tau: int) -> None:
        if tau < 0:
            raise ValueError(f'tau must be >= 0, got {tau}')
        self.tau = tau

    @staticmethod
    def _model(runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not getattr(model, 'with_reconciliation', False):
            raise TypeError(
                'ReconciliationSwitchHook needs an XLearner model with a '
                f'reconciliation neck, got {type(model).__name__}')
        return model

    def _set(self, runner, reconcile: bool) -> None:
        model = self._model(runner)
        if model.reconcile != reconcile:
            model.reconcile = reconcile
            print_log(
                f'Iteration {runner.iter}: reconciliation '
                f'{"on, joint training" if reconcile else "off, sub-backbones train separately"}'
                f' (tau={self.tau})', 'current')

    def before_train(self, runner) -> None:
        self._model(runner)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._set(runner, runner.iter >= self.tau)

    def after_train(self, runner) -> None:
        self._set(runner, True)
