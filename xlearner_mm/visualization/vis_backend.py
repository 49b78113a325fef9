"""TensorBoard with each task's logged values grouped under the task."""
from typing import Union

import numpy as np
import torch
from mmengine.visualization import TensorboardVisBackend

from xlearner_mm.registry import VISBACKENDS
from xlearner_mm.structures import TaskLayout


def tensorboard_tag(name: str) -> str:
    """The TensorBoard tag of a logged value: the parts of a task's name
    (:meth:`TaskLayout.split_log_name`) joined by ``/``, which TensorBoard
    groups by (``det.coco_a.loss_cls`` -> ``det/coco_a/loss_cls``,
    ``det.task_loss`` -> ``det/task_loss``); other names as they are."""
    parts = TaskLayout.split_log_name(name)
    return name if parts is None else '/'.join(parts)


@VISBACKENDS.register_module()
class MultiTaskTensorboardVisBackend(TensorboardVisBackend):
    """mmengine's ``TensorboardVisBackend``, with the values of each task
    under the task: ``task/source/loss`` (:func:`tensorboard_tag`).

    The models log a task's values as ``<task>.<...>`` (``det.coco_a.loss_cls``,
    ``det.loss_rpn_cls``, ``det.task_loss``; mmseg puts its ``decode.`` before
    the source: ``seg.decode.ade.loss_ce``). TensorBoard groups its scalars by
    what comes before the first ``/``, so there they become
    ``det/coco_a/loss_cls``, ``det/loss_rpn_cls``, ``det/task_loss``,
    ``seg/decode/ade/loss_ce``: one section per task. The log and the
    ``scalars.json`` of ``LocalVisBackend`` keep the logged names, which
    ``tools/analyze_logs.py`` and the demo summary read.

    Args:
        save_dir (str): Where the event files go (the Runner gives
            ``<work_dir>/<timestamp>/vis_data``).

    Examples:
        # configs/_base_/default_runtime.py
        vis_backends = [
            dict(type='LocalVisBackend'),
            dict(type='MultiTaskTensorboardVisBackend')
        ]
        visualizer = dict(type='Visualizer', vis_backends=vis_backends)
    """

    def add_scalar(self,
                   name: str,
                   value: Union[int, float, torch.Tensor, np.ndarray],
                   step: int = 0,
                   **kwargs) -> None:
        super().add_scalar(tensorboard_tag(name), value, step, **kwargs)
