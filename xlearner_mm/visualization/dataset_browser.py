"""The training samples of one source of a task, after the task's pipeline,
with their labels (``tools/browse_dataset.py``, after mmdet's
``tools/analysis_tools/browse_dataset.py``).

Each sample is drawn by the visualizer of its codebase, told by its data
sample: mmdet's ``DetLocalVisualizer`` (boxes, masks), mmseg's
``SegLocalVisualizer`` (the label map) or mmpretrain's
``UniversalVisualizer`` (the class), with the source's classes and palette.
"""
import os
import os.path as osp
from typing import Callable, List, Optional

from mmdet.models.utils import mask2ndarray
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import BaseBoxes
from mmdet.visualization import DetLocalVisualizer
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import ProgressBar
from mmpretrain.structures import DataSample
from mmpretrain.visualization import UniversalVisualizer
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from xlearner_mm.registry import DATASETS
from xlearner_mm.utils import register_all_modules


def source_dataset(config: str, task: str, source: str):
    """Task t's training :class:`MultiSourceDataset` of the config file
    ``config`` (its ``train_dataloader.<task>``, as Expansion configs have
    it) with source s alone: the other sources' annotations are not read.
    """
    loaders = Config.fromfile(config).get('train_dataloader') or {}
    if task not in loaders:
        raise ValueError(f'{config}: train_dataloader has no task {task!r}; '
                         f'its tasks are {list(loaders)}')
    dataset_cfg = loaders[task].get('dataset') or {}
    sources = dataset_cfg.get('sources') or {}
    if source not in sources:
        raise ValueError(
            f'{config}: task {task!r} has no source {source!r} '
            f'(train_dataloader.{task}.dataset.sources); its sources are '
            f'{list(sources)}')
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('xlearner_mm'):
        return DATASETS.build(
            dict(dataset_cfg, sources={source: sources[source]},
                 expected_sizes=None))


def _draw_detection(visualizer, name, image, sample, **kwargs) -> None:
    # What mmdet's browse_dataset does to the boxes and masks it draws.
    instances = sample.gt_instances
    if isinstance(instances.get('bboxes'), BaseBoxes):
        instances.bboxes = instances.bboxes.tensor
    if instances.get('masks') is not None:
        instances.masks = mask2ndarray(instances.masks).astype(bool)
    visualizer.add_datasample(name, image, sample, draw_pred=False, **kwargs)


def _draw_segmentation(visualizer, name, image, sample, **kwargs) -> None:
    visualizer.add_datasample(name, image, sample, draw_pred=False, **kwargs)


def _draw_classification(visualizer, name, image, sample, **kwargs) -> None:
    visualizer.visualize_cls(image, sample, draw_pred=False, name=name,
                             **kwargs)


# (data sample class, its codebase's visualizer, how to draw a sample).
_DRAWERS = (
    (DetDataSample, DetLocalVisualizer, _draw_detection),
    (SegDataSample, SegLocalVisualizer, _draw_segmentation),
    (DataSample, UniversalVisualizer, _draw_classification),
)


def _drawer(sample, metainfo: dict) -> Callable:
    """``draw(name, image, sample, **kwargs)`` with the visualizer of the
    sample's codebase, which knows the source's classes and palette."""
    for sample_type, visualizer_type, draw in _DRAWERS:
        if isinstance(sample, sample_type):
            visualizer = visualizer_type(name=f'browse_{id(sample)}')
            visualizer.dataset_meta = metainfo
            return lambda *args, **kwargs: draw(visualizer, *args, **kwargs)
    raise TypeError(
        f'No visualizer for a {type(sample).__name__}: the samples must be '
        'packed by mmdet, mmseg or mmpretrain (PackDetInputs, PackSegInputs, '
        'PackInputs)')


def browse_source(config: str,
                  task: str,
                  source: str,
                  output_dir: Optional[str] = None,
                  show_number: int = 10,
                  show: bool = False) -> List[str]:
    """Draw the first ``show_number`` training samples of source s of task
    t (:func:`source_dataset`) after the task's pipeline, with their labels.

    Args:
        config (str): An Expansion config file.
        task (str): t.
        source (str): s.
        output_dir (str, optional): Where each sample is written, as
            ``<index>_<image name>.png``, at the size the pipeline gives it.
        show_number (int): How many samples. Defaults to 10.
        show (bool): Show each sample in a window. Defaults to False.

    Returns:
        list[str]: The written files.
    """
    if output_dir is None and not show:
        raise ValueError('Nothing to do: give an output dir or show the '
                         'samples')
    dataset = source_dataset(config, task, source)
    number = min(show_number, len(dataset))
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
    written, draw = [], None
    progress = ProgressBar(number)
    for index in range(number):
        item = dataset[index]
        sample = item['data_samples']
        draw = draw or _drawer(sample, dataset.metainfo)
        name = osp.splitext(osp.basename(sample.img_path))[0]
        out_file = None if output_dir is None else osp.join(
            output_dir, f'{index:04d}_{name}.png')
        # The packed image is CHW BGR, as mmcv reads it; the visualizers draw
        # contiguous HWC RGB (mmseg's draws with OpenCV into a copy of it).
        image = item['inputs'].flip(0).permute(1, 2, 0).contiguous().numpy()
        draw(name, image, sample, show=show, out_file=out_file)
        if out_file is not None:
            written.append(out_file)
        progress.update()
    return written
