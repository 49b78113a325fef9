"""Loss and learning-rate curves, and iteration times, of training runs
(``tools/analyze_logs.py``, after mmdet's
``tools/analysis_tools/analyze_logs.py``).

They are read from the ``vis_data/scalars.json`` that mmengine's
``LocalVisBackend`` writes in ``<work_dir>/<timestamp>/``: one JSON object
per logging interval (``step`` is the iteration), and one per validation.
The values are the log processor's: each averaged over its window
(``log_processor.window_size``).

The losses are told apart by the names the models log them under
(:meth:`TaskLayout.split_log_name`): ``<task>.<...>``, e.g.
``det.coco_a.loss_cls``, ``det.loss_rpn_cls`` (shared by the task's
sources) and ``det.task_loss`` (the task's loss of Eq. 1).
"""
import glob
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from xlearner_mm.structures import TaskLayout

# What the pictures are drawn at: a figure of W x H inches at DPI dots per
# inch is a PNG of W*DPI x H*DPI pixels.
DPI = 100
CURVES_SIZE = (12, 8)  # 1200 x 800 pixels
# Keys of every scalars.json line that are no logged value.
_INDEX_KEYS = ('step', 'iter', 'epoch')

#: ``{key: (steps, values)}`` of one run.
Scalars = Dict[str, Tuple[np.ndarray, np.ndarray]]


def find_scalars(path: str) -> str:
    """The ``scalars.json`` that ``path`` names: the file itself, or that of
    the newest run (``<timestamp>/vis_data/scalars.json``, the timestamps
    sorting as they run) in a work dir."""
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path} is neither a scalars.json nor a '
                                'work dir')
    runs = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise FileNotFoundError(
            f'{path} has no run with a scalars.json (<timestamp>/vis_data/'
            "scalars.json, which mmengine's LocalVisBackend writes)")
    return runs[-1]


def load_scalars(path: str) -> Scalars:
    """Every value of a run's ``scalars.json`` (or of the newest run of a
    work dir, :func:`find_scalars`) as ``{key: (steps, values)}``, in the
    order the keys first appear."""
    path = find_scalars(path)
    series: Dict[str, List[Tuple[int, float]]] = OrderedDict()
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f'{path}, line {number}: {error}') from error
            for key, value in record.items():
                if key not in _INDEX_KEYS:
                    series.setdefault(key, []).append((record['step'], value))
    if not series:
        raise ValueError(f'{path} holds no logged value')
    return OrderedDict(
        (key, tuple(np.array(column) for column in zip(*points)))
        for key, points in series.items())


def default_curve_keys(scalars: Scalars) -> List[str]:
    """What ``plot_curve`` draws by default: every loss of a task (its
    per-source losses, the losses its sources share, its task loss) and the
    learning rate."""
    losses = [
        key for key in scalars if TaskLayout.split_log_name(key) is not None
        and TaskLayout.is_loss_name(key)
    ]
    return losses + [key for key in ('lr', ) if key in scalars]


def loss_groups(keys: Sequence[str]) -> 'OrderedDict[str, List[str]]':
    """``{subplot title: keys}``: the values of a task together under the
    task's name (one line per source loss, shared loss and the task loss),
    each other key (``lr``, ``loss``, ``time``, a validation metric) alone
    under its own name."""
    groups: 'OrderedDict[str, List[str]]' = OrderedDict()
    for key in keys:
        parts = TaskLayout.split_log_name(key)
        groups.setdefault(key if parts is None else parts[0], []).append(key)
    return groups


def _is_task_loss(key: str) -> bool:
    """Whether ``key`` is a task's loss of Eq. (1), drawn thicker."""
    parts = TaskLayout.split_log_name(key)
    return parts is not None and parts[1:] == (TaskLayout.TASK_LOSS, )


def plot_curves(runs: 'OrderedDict[str, Scalars]',
                groups: 'OrderedDict[str, List[str]]',
                out: Optional[str] = None,
                title: Optional[str] = None,
                size: Tuple[float, float] = CURVES_SIZE,
                dpi: int = DPI) -> Figure:
    """One subplot per group (:func:`loss_groups`) with a line per key and
    run (a task's loss of Eq. 1 thicker), against the iteration; saved as PNG to ``out`` when given (``size``
    inches at ``dpi``: 1200 x 800 pixels by default).

    Args:
        runs (OrderedDict[str, Scalars]): ``{run name: load_scalars(...)}``.
            The names label the lines when there are several runs.
        groups (OrderedDict[str, list[str]]): ``{subplot title: keys}``.
        out (str, optional): The PNG to write.
        title (str, optional): The figure's title.
    """
    if not groups:
        raise ValueError('No key to plot')
    for name, scalars in runs.items():
        missing = [k for keys in groups.values() for k in keys
                   if k not in scalars]
        if missing:
            raise KeyError(f'{name} has no {missing}; it has {list(scalars)}')
    figure = Figure(figsize=size, dpi=dpi, layout='constrained')
    FigureCanvasAgg(figure)
    columns = int(np.ceil(np.sqrt(len(groups))))
    rows = int(np.ceil(len(groups) / columns))
    for index, (group, keys) in enumerate(groups.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        for run, scalars in runs.items():
            for key in keys:
                steps, values = scalars[key]
                axes.plot(steps, values,
                          linewidth=2 if _is_task_loss(key) else 1,
                          label=key if len(runs) == 1 else f'{run}: {key}')
        axes.set_title(group)
        axes.set_xlabel('iter')
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize='small')
    if title is not None:
        figure.suptitle(title)
    if out is not None:
        figure.savefig(out, dpi=dpi)
    return figure


def train_time_stats(scalars: Scalars,
                     include_outliers: bool = False) -> Dict[str, float]:
    """The average, slowest, fastest and standard deviation of the logged
    ``time`` (seconds per iteration), as mmdet's ``cal_train_time``: the
    first logged value (the warm-up) is left out unless
    ``include_outliers``.

    Returns:
        dict: ``average``, ``std``, ``slowest`` and ``fastest`` (s/iter),
        ``slowest_iter`` and ``fastest_iter``, ``count`` (values used).
    """
    if 'time' not in scalars:
        raise KeyError(f"No 'time' logged (IterTimerHook); the keys are "
                       f'{list(scalars)}')
    steps, times = scalars['time']
    if not include_outliers and len(times) > 1:
        steps, times = steps[1:], times[1:]
    slowest, fastest = int(times.argmax()), int(times.argmin())
    return dict(
        average=float(times.mean()),
        std=float(times.std()),
        slowest=float(times[slowest]),
        slowest_iter=int(steps[slowest]),
        fastest=float(times[fastest]),
        fastest_iter=int(steps[fastest]),
        count=len(times))


def format_train_time(name: str, stats: Dict[str, float]) -> str:
    """``cal_train_time``'s report of one run, in mmdet's words."""
    return '\n'.join([
        f'{"-" * 5}Analyze train time of {name}{"-" * 5}',
        f'slowest iter {stats["slowest_iter"]}, time is '
        f'{stats["slowest"]:.4f} s/iter',
        f'fastest iter {stats["fastest_iter"]}, time is '
        f'{stats["fastest"]:.4f} s/iter',
        f'time std over iters is {stats["std"]:.4f}',
        f'average iter time: {stats["average"]:.4f} s/iter '
        f'({stats["count"]} logged values)',
    ])
