from mmengine.hooks import Hook

from xlearner_mm.registry import HOOKS


@HOOKS.register_module()
class StopTrainingHook(Hook):
    """Stop training after iteration ``after_iter`` (1-based), as a run
    killed right after that iteration's checkpoint would stop: the
    rehearsal's first half, which a resumed run then continues.

    Examples:
        >>> default_hooks = dict(checkpoint=dict(interval=2))
        >>> custom_hooks = [dict(type='StopTrainingHook', after_iter=2)]

    Args:
        after_iter (int): The last iteration to train.
    """

    priority = 'LOWEST'

    def __init__(self, after_iter: int) -> None:
        if after_iter < 1:
            raise ValueError(f'after_iter must be >= 1, got {after_iter}')
        self.after_iter = after_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 >= self.after_iter:
            runner.train_loop.stop_training = True
