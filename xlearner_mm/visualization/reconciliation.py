"""What reconciliation does in an Expansion model (paper Eq. 2), on one
image (``tools/vis_reconciliation.py``).

For every task t the image goes through t's data preprocessor, every stream
gives its levels :math:`\\mathcal{E}^k`, and the reconciliation neck fuses
them into :math:`F^t`, as in training after tau. Forward hooks on the neck's
layers (:meth:`ReconciliationNeck.links`) record each layer's output on the
way, so the neck's own forward is what runs. A link's contribution is

.. math::
    \\frac{\\mathrm{mean} |\\gamma_{j \\to i}^{k \\to t}(\\mathcal{E}_j^k)|}
         {\\mathrm{mean} |\\mathcal{E}_i^t|}

the size of what the layer adds to level i of task t, relative to the level
it is added to. Levels are 0-based, as ``neck.out_levels`` names them; the
links are those of the neck's ``direction`` (bottom-up: j <= i, top-down:
j >= i).
"""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.visualization import Visualizer
from torch import Tensor, nn
from torch.nn import functional as F

from xlearner_mm.models.necks import ReconciliationLink
from .log_analysis import DPI

HEATMAP_SIZE = (12, 6)  # inches: 1200 x 600 pixels at DPI
# The side of each feature map's tile in the feature-map pictures, pixels.
FEATMAP_TILE = 256


class ReconciliationPass(NamedTuple):
    """What one image does in the streams and the neck, per target task t
    (each on t's preprocessed image)."""
    streams: Dict[str, Tuple[Tensor, ...]]  # {t: (E_0^t, ..., E_{D-1}^t)}
    fused: Dict[str, Tuple[Tensor, ...]]  # {t: (F_0^t, ..., F_{D-1}^t)}
    contributions: Dict[ReconciliationLink, float]


def image_inputs(model: nn.Module, image: np.ndarray,
                 tasks: Sequence[str]) -> Dict[str, Tensor]:
    """``{task: (1, 3, H, W)}``: an image as mmcv reads it (H x W x 3 BGR
    uint8) through each task's data preprocessor (channel order,
    normalisation, padding), as training feeds the streams.

    Args:
        model (nn.Module): An :class:`XLearner` or :class:`ExpansionTeacher`
            (their ``data_preprocessor`` is a ``MultiTaskDataPreprocessor``).
        image (np.ndarray): The image.
        tasks (Sequence[str]): The tasks to preprocess it for.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    batch = model.data_preprocessor(
        {task: dict(inputs=[tensor]) for task in tasks}, False)
    return batch['inputs']


def run_reconciliation(model: nn.Module,
                       inputs: Dict[str, Tensor]) -> ReconciliationPass:
    """The streams, the fused features and every link's contribution (see
    the module docstring) into each task of ``inputs``, in eval mode (the
    BN running statistics), without gradients.

    Args:
        model (nn.Module): An :class:`XLearner` or :class:`ExpansionTeacher`
            with a reconciliation neck.
        inputs (dict[str, Tensor]): ``{target task: preprocessed images}``
            (:func:`image_inputs`).
    """
    neck = model.neck
    if neck is None:
        raise ValueError(
            'The model has no reconciliation neck (model.neck=None, a single '
            'task or a Hard-sharing backbone): there is nothing to draw')
    unknown = set(inputs) - set(neck.tasks)
    if unknown:
        raise KeyError(f'No task {sorted(unknown)} in the model; its tasks '
                       f'are {list(neck.tasks)}')
    links = {
        link: layer
        for link, layer in neck.links().items() if link.target in inputs
    }
    outputs: Dict[ReconciliationLink, Tensor] = {}

    def recorder(link):
        def record(module, args, output):
            outputs[link] = output.abs().mean()
        return record

    handles = [
        layer.register_forward_hook(recorder(link))
        for link, layer in links.items()
    ]
    streams, fused = {}, {}
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for task, images in inputs.items():
                features = model.backbone(images)
                streams[task] = features[task]
                fused[task] = neck(features, task)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    # A level of all zeros (dead ReLUs) would make the ratio infinite.
    tiny = torch.finfo(torch.float32).tiny
    contributions = {
        link: float(outputs[link]) / max(
            float(streams[link.target][link.target_level].abs().mean()), tiny)
        for link in links
    }
    return ReconciliationPass(streams, fused, contributions)


def reconciliation_contributions(
        model: nn.Module,
        inputs: Dict[str, Tensor]) -> Dict[ReconciliationLink, float]:
    """``{link: mean |gamma(E_j^k)| / mean |E_i^t|}`` of every link into the
    tasks of ``inputs`` (:func:`run_reconciliation`)."""
    return run_reconciliation(model, inputs).contributions


def contribution_grid(contributions: Dict[ReconciliationLink, float]
                      ) -> Tuple[list, list, np.ndarray]:
    """``(rows, columns, values)``: the targets ``(t, i)`` as rows, the
    sources ``(k, j)`` as columns (tasks in the order they first appear,
    levels ascending), NaN where no layer links them."""
    tasks = list(dict.fromkeys(
        task for link in contributions
        for task in (link.target, link.source)))

    def ordered(cells):
        return sorted(set(cells), key=lambda c: (tasks.index(c[0]), c[1]))

    rows = ordered((link.target, link.target_level) for link in contributions)
    columns = ordered(
        (link.source, link.source_level) for link in contributions)
    values = np.full((len(rows), len(columns)), np.nan)
    for link, value in contributions.items():
        values[rows.index((link.target, link.target_level)),
               columns.index((link.source, link.source_level))] = value
    return rows, columns, values


def plot_contributions(contributions: Dict[ReconciliationLink, float],
                       out: Optional[str] = None,
                       size: Tuple[float, float] = HEATMAP_SIZE,
                       dpi: int = DPI) -> Figure:
    """A heatmap of the contributions, one annotated cell per link
    (:func:`contribution_grid`; cells of no link are left blank), saved as
    PNG to ``out`` when given: ``size`` inches at ``dpi``, 1200 x 600 pixels
    by default."""
    if not contributions:
        raise ValueError('No reconciliation link to draw')
    rows, columns, values = contribution_grid(contributions)
    figure = Figure(figsize=size, dpi=dpi, layout='constrained')
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(
        np.ma.masked_invalid(values), aspect='auto',
        cmap=matplotlib.colormaps['viridis'].with_extremes(bad='white'))
    middle = np.nanmin(values) + (np.nanmax(values) - np.nanmin(values)) / 2
    for (r, c), value in np.ndenumerate(values):
        if not np.isnan(value):
            axes.text(c, r, f'{value:.2f}', ha='center', va='center',
                      fontsize='small',
                      color='black' if value > middle else 'white')
    axes.set_xticks(range(len(columns)),
                    [f'{task} L{level}' for task, level in columns])
    axes.set_yticks(range(len(rows)),
                    [f'{task} L{level}' for task, level in rows])
    axes.set_xlabel('source: task k, level j (0-based)')
    axes.set_ylabel('target: task t, level i')
    axes.set_title(r'Reconciliation: mean $|\gamma_{j \to i}^{k \to t}'
                   r'(E_j^k)|$ / mean $|E_i^t|$')
    figure.colorbar(image, ax=axes)
    if out is not None:
        figure.savefig(out, dpi=dpi)
    return figure


def draw_feature_maps(image: np.ndarray,
                      task: str,
                      streams: Sequence[Tensor],
                      fused: Sequence[Tensor],
                      tile: int = FEATMAP_TILE) -> np.ndarray:
    """Task t's levels over the image, through mmengine's
    ``Visualizer.draw_featmap`` (the channel mean): :math:`\\mathcal{E}_i^t`
    in the top row, :math:`F_i^t` below, a ``tile`` x ``tile`` tile per
    level (D levels: a 2*tile x D*tile RGB image).

    Args:
        image (np.ndarray): The RGB image the features were computed from.
        task (str): t, for the labels.
        streams (Sequence[Tensor]): :math:`\\mathcal{E}^t`, (1, C, H, W) each.
        fused (Sequence[Tensor]): :math:`F^t`.
    """

    def draw(level: Tensor) -> np.ndarray:
        # Brought to the image's size here, as draw_featmap would do (and
        # warn about).
        featmap = F.interpolate(level, size=image.shape[:2], mode='bilinear',
                                align_corners=False)[0]
        return Visualizer.draw_featmap(featmap, image,
                                       resize_shape=(tile, tile))

    rows = [
        np.concatenate([draw(level) for level in levels], axis=1)
        for levels in (streams, fused)
    ]
    visualizer = Visualizer(name='draw_feature_maps',
                            image=np.concatenate(rows, axis=0))
    labels = [(f'{task} {kind}_{i}', (i * tile + 4, r * tile + 4))
              for r, kind in enumerate(('E', 'F'))
              for i in range(len(streams))]
    visualizer.draw_texts([text for text, _ in labels],
                          np.array([position for _, position in labels]),
                          colors='white', font_sizes=14,
                          bboxes=dict(facecolor='black', alpha=0.6))
    return visualizer.get_image()
