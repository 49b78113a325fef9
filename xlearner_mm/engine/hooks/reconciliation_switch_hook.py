import itertools

from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch.nn.parallel import DistributedDataParallel

from xlearner_mm.registry import HOOKS
from xlearner_mm.structures import TaskLayout
from xlearner_mm.utils import unwrap_model
from xlearner_mm.utils.compat import (ddp_ignore_params_and_buffers,
                                      ddp_remove_autograd_hooks)


@HOOKS.register_module()
class ReconciliationSwitchHook(Hook):
    """Algorithm 1's step threshold tau.

    For the first ``tau`` iterations the sub-backbones train separately
    (reconciliation off); from iteration ``tau`` on they train jointly with
    the reconciliation layers. The phase is derived from ``runner.iter``
    before every iteration, so it is right after a resume, and reconciliation
    is switched on when training ends, since the expanded backbone is used
    with it (Squeeze Stage, export).

    Under DistributedDataParallel the reconciliation layers get no gradient
    before tau, which DDP only tolerates with ``find_unused_parameters=True``
    and at the price of a search of the autograd graph after every forward,
    for the whole run. Instead, while reconciliation is off this hook wraps
    the model anew with the neck's parameters and buffers ignored by DDP (not
    reduced, not broadcast), and at tau wraps it once more without ignoring
    them; the new wrapper broadcasts rank 0's parameters, so the ranks start
    joint training in sync. A run resumed after tau keeps the Runner's own
    wrapper. So ``find_unused_parameters`` stays False: the layers into levels
    that no head reads are not built (``ReconciliationNeck.out_levels``).

    A ``tau`` that is not below ``train_cfg.max_iters`` is refused before
    the first iteration: such a run never trains the reconciliation layers,
    although the model it saves has them switched on.

    A model without a neck (``model.neck=None``, the "w/o Rec." ablation)
    keeps Algorithm 1's phases: before tau each stream trains on its own
    task loss (their sum), from tau on jointly on the Eq. (1) average. Only
    reconciliation has nothing to switch on, and DDP nothing to ignore, which
    the hook logs once; so one config family serves both.

    Examples:
        The demo Expansion (``configs/demo/expansion_demo.py``): three tasks
        whose sub-backbones train apart for 40 of 120 iterations. The hook
        needs a model with a reconciliation neck and the per-task
        dataloaders of :class:`MultiTaskIterBasedTrainLoop`: every iteration
        has a batch of every task, so from tau on every reconciliation layer
        gets a gradient.

        >>> model = dict(
        ...     type='XLearner',
        ...     backbone=dict(type='ExpandedBackbone',
        ...                   backbone=dict(type='mmdet.ResNet', depth=18)),
        ...     neck=dict(type='ReconciliationNeck', groups=4),
        ...     task_models=dict(cls=..., det=..., seg=...))
        >>> custom_hooks = [dict(type='RandomStateHook'),
        ...                 dict(type='ReconciliationSwitchHook', tau=40)]
        >>> train_cfg = dict(type='MultiTaskIterBasedTrainLoop', max_iters=120)
        >>> def _train_loader(task, batch_size, pipeline, sources):
        ...     return dict(
        ...         batch_size=batch_size, num_workers=1,
        ...         sampler=dict(type='SourceMixSampler',
        ...                      source_ratio=[1] * len(sources)),
        ...         dataset=dict(type='MultiSourceDataset', task=task,
        ...                      pipeline=pipeline, sources=sources))
        >>> train_dataloader = dict(
        ...     cls=_train_loader('cls', 8, cls_train_pipeline,
        ...                       dict(folder_cls=demo_folder_cls_train,
        ...                            annfile_cls=demo_annfile_cls_train)),
        ...     det=_train_loader('det', 4, det_train_pipeline,
        ...                       dict(coco_a=demo_coco_a_train,
        ...                            coco_b=demo_coco_b_train)),
        ...     seg=_train_loader('seg', 4, seg_train_pipeline,
        ...                       dict(ade=demo_ade_train)))

    Args:
        tau (int): Number of iterations without reconciliation.
    """

    priority = 'NORMAL'

    def __init__(self, tau: int) -> None:
        if tau < 0:
            raise ValueError(f'tau must be >= 0, got {tau}')
        self.tau = tau
        # Whether the current DDP wrapper ignores the neck.
        self._neck_ignored = False

    @staticmethod
    def _model(runner):
        model = unwrap_model(runner.model)
        if not hasattr(model, 'with_reconciliation'):
            raise TypeError(
                'ReconciliationSwitchHook needs an XLearner model (Algorithm '
                f"1's phases), got {type(model).__name__}")
        return model

    def _set(self, runner, reconcile: bool) -> None:
        model = self._model(runner)
        if model.reconcile != reconcile:
            model.reconcile = reconcile
            print_log(
                f'Iteration {runner.iter}: reconciliation '
                f'{"on, joint training" if reconcile else "off, sub-backbones train separately"}'
                f' (tau={self.tau})', 'current')

    def _rewrap(self, runner, ignore_neck: bool) -> None:
        """Wrap the model in a new DDP wrapper that ignores the neck's
        parameters and buffers or not (nothing to do without DDP)."""
        if not isinstance(runner.model, DistributedDataParallel):
            return
        model = self._model(runner)
        ignored = [
            f'{TaskLayout.NECK}{name}'
            for name, _ in itertools.chain(model.neck.named_parameters(),
                                           model.neck.named_buffers())
        ] if ignore_neck else []
        # The old wrapper's reducer hooks the parameters' gradient
        # accumulators; they must not reduce next to the new ones.
        ddp_remove_autograd_hooks(runner.model)
        ddp_ignore_params_and_buffers(model, ignored)
        runner.model = runner.wrap_model(
            runner.cfg.get('model_wrapper_cfg'), model)
        self._neck_ignored = ignore_neck
        print_log(
            f'Iteration {runner.iter}: DistributedDataParallel '
            f'{"ignores" if ignore_neck else "reduces"} the parameters and '
            'buffers of the reconciliation neck', 'current')

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if self.tau >= runner.max_iters:
            raise ValueError(
                f'ReconciliationSwitchHook tau={self.tau} (custom_hooks) is '
                f'not below train_cfg.max_iters={runner.max_iters}: the run '
                'would end before the joint phase, so the reconciliation '
                'layers would never train, yet the saved model would use '
                'them (Squeeze Stage, export). Lower tau or raise max_iters; '
                'for a run without the separate phase, leave out this hook.')
        if not model.with_reconciliation:
            print_log(
                'ReconciliationSwitchHook: the model has no reconciliation '
                'neck (model.neck=None), so tau switches only the loss: the '
                'sum of the task losses before it (separate training), the '
                'Eq. (1) average from it on (joint training)', 'current')
        elif runner.iter < self.tau:
            self._rewrap(runner, ignore_neck=True)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        reconcile = runner.iter >= self.tau
        if reconcile and self._neck_ignored:
            self._rewrap(runner, ignore_neck=False)
        self._set(runner, reconcile)

    def after_train(self, runner) -> None:
        self._set(runner, True)
