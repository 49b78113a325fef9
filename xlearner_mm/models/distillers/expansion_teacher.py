from typing import Dict, Sequence, Tuple

from torch import Tensor, nn

from xlearner_mm.structures import TaskLayout, read_checkpoint
from ..architectures.xlearner import (DEFAULT_NECK, MultiTaskDataPreprocessor,
                                      build_data_preprocessor, task_features)
from ..utils.checkpoint_state import checkpoint_mismatches, format_mismatches


class ExpansionTeacher(nn.Module):
    """The part of an Expansion model (:class:`XLearner`) that makes the
    task features :math:`F^t`: the expanded backbone, the reconciliation
    neck, and each task's data preprocessor. The task models' heads are
    never run by the Squeeze Stage, so they are neither built nor loaded.

    Built from the Expansion model config and loaded strictly from its
    checkpoint, after the checkpoint's tasks, keys and shapes (and its saved
    :class:`TaskLayout`, when it has one) are checked against the config.

    Args:
        cfg (dict): The Expansion model config (an :class:`XLearner`).
        checkpoint (str): Its checkpoint (a path or an URL).
        cfg_key (str): The config key of ``cfg``, for messages. Defaults to
            ``'model.teacher'``.
    """

    def __init__(self, cfg: dict, checkpoint: str,
                 cfg_key: str = 'model.teacher') -> None:
        super().__init__()
        task_models = cfg['task_models']
        self.tasks = tuple(task_models)
        neck = cfg.get('neck', DEFAULT_NECK)
        self.layout = TaskLayout(
            tasks=self.tasks, backbone=cfg['backbone'], neck=neck)
        self.backbone, self.neck = self.layout.build_expanded()
        self.data_preprocessor = MultiTaskDataPreprocessor({
            task: build_data_preprocessor(
                task_cfg, f'{cfg_key}.task_models.{task}')
            for task, task_cfg in task_models.items()
        })
        self._load(checkpoint, f'{cfg_key}_checkpoint', cfg_key)

    def _load(self, path: str, key: str, cfg_key: str) -> None:
        """Load the backbone and neck of the Expansion checkpoint; its saved
        layout, when it has one, gives the sources of the tasks."""
        found = read_checkpoint(path, key)
        saved = TaskLayout.from_meta(found['meta'])
        state = TaskLayout.expansion_state(found['state_dict'])
        problems = (saved.differences(self.layout, f'checkpoint {path}',
                                      cfg_key) if saved else [])
        problems = problems or checkpoint_mismatches(
            self.state_dict(), state, self.layout.streams, path)
        if problems:
            raise ValueError(
                f'{key} {path} does not match the teacher config '
                f'{cfg_key}:{format_mismatches(problems)}')
        self.load_state_dict(state, strict=True)
        self.layout = saved or self.layout

    def extract_task_feat(self, inputs: Tensor,
                          task: str) -> Tuple[Tensor, ...]:
        """Task t's :math:`F^t` after tau: reconciled when there is a neck."""
        return task_features(self.backbone, self.neck, inputs, task)

    def extract_feats(self, inputs: Tensor, tasks: Sequence[str]
                      ) -> Dict[str, Tuple[Tensor, ...]]:
        """``{t: F^t}`` for each of ``tasks`` on one batch, after tau. With a
        neck every stream runs once and each task's reconciliation reads
        them; without one only the tasks' own streams run."""
        if self.neck is None:
            return self.backbone(inputs, tasks=tasks)
        feats = self.backbone(inputs)
        return {task: self.neck(feats, task) for task in tasks}
