import hashlib
import os.path as osp
from typing import List, Union

from torch.utils.data import Dataset

from xlearner_mm.registry import DATASETS

PARTS = ('train', 'holdout')


def in_holdout(name: str, fraction: float) -> bool:
    """Whether the image file ``name`` belongs to the held-out part: decided
    by a hash of the name, so the split is the same on every machine, for
    any dataset order, and an image listed twice (VOC12's ``train.txt``
    inside ``aug.txt``) never lands on both sides."""
    digest = hashlib.sha1(name.encode()).hexdigest()
    return int(digest[:8], 16) % 10000 < round(fraction * 10000)


@DATASETS.register_module()
class HoldoutSplit(Dataset):
    """One part of a dataset split into a training part and a held-out
    validation part, for choosing hyper-parameters without the test set
    (the transfer suite's learning-rate search, ``tools/transfer.py``).

    About ``fraction`` of the images (by a hash of the file name,
    :func:`in_holdout`) form the held-out part; the rest form the training
    part. The two parts of the same dataset config are disjoint and together
    are the whole dataset. Wrap the dataset *inside* a ``RepeatDataset``,
    and give the held-out part the test pipeline but the same
    ``filter_cfg`` and ``test_mode`` as the training part (filtering
    decides which images exist to be split). A training image whose
    pipeline returns None is replaced, as mmengine's ``BaseDataset`` does, by
    another image of the whole dataset: keep such pipelines out of a search.

    Examples:
        >>> voc = dict(type='mmdet.ConcatDataset', datasets=[voc07, voc12])
        >>> train_dataloader = dict(dataset=dict(
        ...     type='RepeatDataset', times=3,
        ...     dataset=dict(type='xlearner_mm.HoldoutSplit', part='train',
        ...                  fraction=0.1, dataset=voc)))
        >>> val_dataloader = dict(dataset=dict(
        ...     type='xlearner_mm.HoldoutSplit', part='holdout',
        ...     fraction=0.1, dataset=voc_with_test_pipeline))

    Args:
        dataset (dict | Dataset): The dataset (config) to split; its items'
            data infos need ``img_path``.
        part (str): ``'train'`` or ``'holdout'``.
        fraction (float): The held-out share, in (0, 1).
        lazy_init (bool): Split at the first access instead of now.
    """

    def __init__(self,
                 dataset: Union[dict, Dataset],
                 part: str,
                 fraction: float = 0.1,
                 lazy_init: bool = False) -> None:
        if part not in PARTS:
            raise ValueError(f'HoldoutSplit: part must be one of {PARTS}, '
                             f'got {part!r}')
        if not 0 < fraction < 1:
            raise ValueError(
                f'HoldoutSplit: fraction must be in (0, 1), got {fraction}')
        self.dataset = (
            DATASETS.build(dataset) if isinstance(dataset, dict) else dataset)
        self.part = part
        self.fraction = fraction
        self._indices: List[int] = []
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        held_out = self.part == 'holdout'
        seen = set()
        for i in range(len(self.dataset)):
            name = osp.basename(self.dataset.get_data_info(i)['img_path'])
            if in_holdout(name, self.fraction) != held_out:
                continue
            # The held-out part scores each image once; training keeps the
            # dataset's own repetitions.
            if held_out and name in seen:
                continue
            seen.add(name)
            self._indices.append(i)
        if not self._indices:
            raise ValueError(
                f'HoldoutSplit: the {self.part} part of {len(self.dataset)} '
                f'images is empty at fraction={self.fraction}; the dataset '
                'is too small for this fraction')
        self._fully_initialized = True

    def get_data_info(self, idx: int) -> dict:
        self.full_init()
        return self.dataset.get_data_info(self._indices[idx])

    def __getitem__(self, idx: int):
        self.full_init()
        return self.dataset[self._indices[idx]]

    def __len__(self) -> int:
        self.full_init()
        return len(self._indices)
