import numbers
import os.path as osp
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from xlearner_mm.registry import HOOKS
from xlearner_mm.utils import atomic_json_dump


@HOOKS.register_module()
class FinalMetricsHook(Hook):
    """Write the metrics of the validation at the end of training to
    ``<work_dir>/<out_file>``: the finished mark and the result of a
    transfer-suite job (``tools/transfer.py``).

    The train loop validates at its last iteration. A run resumed from the
    checkpoint of that iteration (the previous run stopped during that
    validation) trains nothing and validates nothing, so this hook then runs
    the validation itself. The file is written atomically by the main
    process, once the metrics exist: its presence means the job is done.

    Examples:
        >>> custom_hooks = [dict(type='xlearner_mm.FinalMetricsHook')]
        >>> # -> work_dirs/job/final_metrics.json:
        >>> # {"iter": 24000, "metrics": {"pascal_voc/mAP": 0.83, ...}}

    Args:
        out_file (str): The file name in the work dir.
            Defaults to ``'final_metrics.json'``.
    """

    priority = 'LOWEST'

    def __init__(self, out_file: str = 'final_metrics.json') -> None:
        self.out_file = out_file
        self._metrics: Optional[Dict[str, float]] = None

    def after_val_epoch(self, runner, metrics=None) -> None:
        if runner.iter == runner.max_iters:
            # numbers only: a metric may also report tables or arrays
            self._metrics = {
                key: float(value)
                for key, value in (metrics or {}).items()
                if isinstance(value, numbers.Real)
            }

    def after_train(self, runner) -> None:
        if self._metrics is None:
            runner.val_loop.run()
        if is_main_process():
            atomic_json_dump(
                dict(iter=runner.iter, metrics=self._metrics),
                osp.join(runner.work_dir, self.out_file),
                indent=2)
