"""A stand-in for one data source: as many samples as the real source has,
with its classes, made up on the fly in the format its codebase's loading
transforms produce, so that the rest of a real pipeline runs unchanged."""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset

from xlearner_mm.registry import DATASETS

#: The data formats, by the kind of task a pipeline packs.
KINDS = ('cls', 'det', 'seg')


@DATASETS.register_module()
class SyntheticSource(BaseDataset):
    """``size`` made-up samples of one source, in its codebase's format.

    Sample ``i`` is drawn from a generator seeded by ``(seed, i)``, so it is
    the same in every process and on every call, and nothing is stored: a
    15-million-image source costs no memory. What a sample holds is what the
    codebase's ``LoadImageFromFile`` + ``LoadAnnotations`` would have put in
    the results (the rehearsal drops those transforms from the pipeline):

    * ``'cls'`` (mmpretrain): ``img`` (uint8 HxWx3), ``gt_label``;
    * ``'det'`` (mmdet): ``img``, ``gt_bboxes`` (``HorizontalBoxes``),
      ``gt_bboxes_labels``, ``gt_ignore_flags``, and ``width`` / ``height``
      for mmdet's aspect-ratio batch sampler;
    * ``'seg'`` (mmseg): ``img``, ``gt_seg_map`` (uint8, blocks of classes
      with an ``ignore_index`` border), ``seg_fields``.

    Examples:
        # what tools/rehearse.py puts in place of ImageNet in
        # configs/xlearner/expansion_r50.py
        imagenet = dict(type='SyntheticSource', kind='cls', size=1281167,
                        num_classes=1000, img_shape=(224, 224))

    Args:
        kind (str): One of :data:`KINDS`.
        size (int): The number of samples (the real source's size).
        num_classes (int): The source's classes; ``metainfo['classes']`` gets
            as many names.
        img_shape (tuple[int, int]): (height, width) of every image.
        classes (Sequence[str], optional): The class names, when the real
            source's are known. Defaults to ``class_0``, ``class_1``...
        boxes_per_image (int): Boxes of a ``'det'`` sample. Defaults to 5.
        ignore_index (int): The ignored label of a ``'seg'`` map.
            Defaults to 255.
        seed (int): Defaults to 0.
        name (str): The source's name, for the ``img_path`` entries (which
            messages and meta keys read). Defaults to ``'synthetic'``.
        pipeline (list): The transforms after loading.
        lazy_init (bool): Accepted for :class:`MultiSourceDataset`, which
            builds its sources lazily; there is nothing to load either way.
    """

    def __init__(self,
                 kind: str,
                 size: int,
                 num_classes: int,
                 img_shape: Tuple[int, int],
                 classes: Optional[Sequence[str]] = None,
                 boxes_per_image: int = 5,
                 ignore_index: int = 255,
                 seed: int = 0,
                 name: str = 'synthetic',
                 pipeline: Sequence[Union[dict, callable]] = (),
                 lazy_init: bool = True,
                 **kwargs) -> None:
        if kind not in KINDS:
            raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
        if int(size) < 1 or int(num_classes) < 1:
            raise ValueError(f'source {name!r}: size ({size}) and num_classes '
                             f'({num_classes}) must be positive')
        if classes is not None and len(classes) != num_classes:
            raise ValueError(f'source {name!r}: {len(classes)} class names '
                             f'for num_classes={num_classes}')
        self.kind = kind
        self.size = int(size)
        self.num_classes = int(num_classes)
        self.img_shape = tuple(int(s) for s in img_shape)
        self.boxes_per_image = boxes_per_image
        self.ignore_index = ignore_index
        self.seed = seed
        self.name = name
        names = tuple(classes) if classes is not None else tuple(
            f'class_{i}' for i in range(self.num_classes))
        super().__init__(
            metainfo=dict(classes=names),
            pipeline=list(pipeline),
            serialize_data=False,
            lazy_init=True,
            **kwargs)
        self._fully_initialized = True

    def full_init(self) -> None:
        """Nothing to load: samples are made in :meth:`get_data_info`."""
        self._fully_initialized = True

    def load_data_list(self) -> list:
        return []

    def __len__(self) -> int:
        return self.size

    def get_data_info(self, idx: int) -> dict:
        """Sample ``idx`` as the loading transforms would leave it."""
        if not -self.size <= idx < self.size:
            raise IndexError(f'index {idx} out of range for the {self.size} '
                             f'samples of source {self.name!r}')
        idx %= self.size
        rng = np.random.default_rng([self.seed, idx])
        h, w = self.img_shape
        info = dict(
            img=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            img_shape=(h, w),
            ori_shape=(h, w),
            img_path=f'synthetic/{self.name}/{idx}.jpg',
            img_id=idx,
            sample_idx=idx)
        if self.kind == 'cls':
            info['gt_label'] = int(rng.integers(0, self.num_classes))
        elif self.kind == 'det':
            info.update(self._boxes(rng, h, w), width=w, height=h)
        else:
            info.update(
                gt_seg_map=self._seg_map(rng, h, w),
                seg_fields=['gt_seg_map'],
                reduce_zero_label=False)
        return info

    def _boxes(self, rng, h: int, w: int) -> dict:
        # imported here: mmdet is needed for detection sources only
        from mmdet.structures.bbox import HorizontalBoxes
        n = self.boxes_per_image
        side = np.stack([rng.uniform(0.1, 0.6, n) * w,
                         rng.uniform(0.1, 0.6, n) * h], axis=1)
        corner = rng.uniform(0, 1, (n, 2)) * (np.array([w, h]) - side)
        boxes = np.concatenate([corner, corner + side], axis=1)
        return dict(
            gt_bboxes=HorizontalBoxes(boxes.astype(np.float32)),
            gt_bboxes_labels=rng.integers(0, self.num_classes,
                                          n).astype(np.int64),
            gt_ignore_flags=np.zeros(n, dtype=bool))

    def _seg_map(self, rng, h: int, w: int) -> np.ndarray:
        """4x4 blocks of random classes, with an ignored border."""
        blocks = rng.integers(0, self.num_classes, (4, 4)).astype(np.uint8)
        rows = np.minimum(np.arange(h) * 4 // h, 3)
        cols = np.minimum(np.arange(w) * 4 // w, 3)
        seg = blocks[rows][:, cols]
        border = max(1, min(h, w) // 32)
        seg[:border], seg[-border:] = self.ignore_index, self.ignore_index
        return seg
