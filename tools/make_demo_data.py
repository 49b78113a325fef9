"""Write a tiny multi-source multi-task dataset in the real on-disk formats.

Every source is read by a stock dataset class (see
``configs/_base_/datasets/demo.py``) and carries a learnable signal (class
colours, stripe orientations, coloured boxes and regions), so that a model's
losses go down within a few dozen iterations. The output is deterministic for
a seed: each source directory is written to a temporary directory and then
replaces the old one, so running the script again overwrites cleanly and an
interrupted run never leaves a half-written source behind.

Layout under ``--out`` (default ``data/demo``)::

    folder_cls/   mmpretrain.CustomDataset, ImageNet-style class folders
        train/<class>/NNNN.jpg, val/<class>/NNNN.jpg   (4 classes, 64x64)
    annfile_cls/  mmpretrain.CustomDataset with annotation files
        images/{train,val}/NNNN.jpg
        meta/train.txt, meta/val.txt   ("train/NNNN.jpg <label>", 3 classes)
    coco_a/, coco_b/   mmdet.CocoDataset (3 and 2 categories)
        train/NNNN.jpg, val/NNNN.jpg
        annotations/instances_train.json, annotations/instances_val.json
    ade/          mmseg.ADE20KDataset layout (4 of ADE20K's classes)
        images/{training,validation}/NNNN.jpg
        annotations/{training,validation}/NNNN.png   (0 = ignore, 1..4)

Usage::

    python tools/make_demo_data.py [--out data/demo] [--seed 0]
"""
import argparse
import json
import os
import os.path as osp
import shutil
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

# Class name -> BGR colour (cv2 writes BGR).
FOLDER_CLS_CLASSES = {
    'blue': (200, 40, 40),
    'green': (40, 200, 40),
    'red': (40, 40, 200),
    'yellow': (40, 200, 200),
}
ANNFILE_CLS_CLASSES = ('horizontal', 'vertical', 'checker')
COCO_A_CLASSES = {
    'red_box': (30, 30, 220),
    'green_box': (30, 220, 30),
    'blue_box': (220, 30, 30),
}
COCO_B_CLASSES = {
    'cyan_disk': (230, 230, 20),
    'magenta_disk': (230, 20, 230),
}
# The first four ADE20K classes: their ids 1..4 in ADE's label maps.
ADE_CLASSES = {
    'wall': (90, 90, 160),
    'building': (60, 150, 200),
    'sky': (235, 200, 120),
    'floor': (40, 110, 60),
}
NUM_TRAIN = 32
NUM_VAL = 8


def noisy_background(rng: np.random.Generator, height: int,
                     width: int) -> np.ndarray:
    """A grey image with pixel noise, (H, W, 3) uint8."""
    level = rng.integers(90, 170)
    noise = rng.normal(0, 12, size=(height, width, 3))
    return np.clip(level + noise, 0, 255).astype(np.uint8)


def add_noise(rng: np.random.Generator,
              img: np.ndarray,
              std: float = 10) -> np.ndarray:
    """``img`` plus Gaussian pixel noise, uint8."""
    return np.clip(img + rng.normal(0, std, img.shape), 0,
                   255).astype(np.uint8)


def folder_cls_image(rng: np.random.Generator, label: int) -> np.ndarray:
    """A large disk of the class colour on a noisy background, 64x64."""
    img = noisy_background(rng, 64, 64)
    colour = list(FOLDER_CLS_CLASSES.values())[label]
    center = tuple(int(c) for c in rng.integers(24, 40, size=2))
    cv2.circle(img, center, int(rng.integers(16, 24)), colour, -1)
    return add_noise(rng, img)


def annfile_cls_image(rng: np.random.Generator, label: int) -> np.ndarray:
    """Stripes whose orientation is the class (random colours), 64x64."""
    period = int(rng.integers(8, 17))
    phase = int(rng.integers(0, period))
    yy, xx = np.mgrid[:64, :64] + phase
    rows, cols = (yy // (period // 2)) % 2, (xx // (period // 2)) % 2
    mask = (rows, cols, rows ^ cols)[label].astype(bool)
    colours = rng.integers(0, 256, size=(2, 3))
    img = np.where(mask[..., None], colours[0], colours[1])
    return add_noise(rng, img)


def draw_objects(rng: np.random.Generator, img: np.ndarray,
                 palette: Sequence[Tuple[int, int, int]],
                 shape: str) -> List[Tuple[int, List[float]]]:
    """Draw 1-3 non-overlapping objects ('box' or 'disk') on ``img``.

    Returns:
        list[tuple[int, list[float]]]: (label, COCO bbox ``[x, y, w, h]``)
        of each object.
    """
    height, width = img.shape[:2]
    objects, boxes = [], []
    for _ in range(int(rng.integers(1, 4))):
        # Rejection sampling of a free spot; give up after a few tries.
        for _ in range(20):
            h = int(rng.integers(18, 44))
            w = int(rng.integers(18, 44)) if shape == 'box' else h
            x = int(rng.integers(0, width - w))
            y = int(rng.integers(0, height - h))
            if all(x + w <= bx or bx + bw <= x or y + h <= by or by + bh <= y
                   for bx, by, bw, bh in boxes):
                break
        else:
            continue
        label = int(rng.integers(0, len(palette)))
        if shape == 'box':
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), palette[label],
                          -1)
        else:
            cv2.circle(img, (x + w // 2, y + h // 2), w // 2, palette[label],
                       -1)
        boxes.append((x, y, w, h))
        objects.append((label, [float(x), float(y), float(w), float(h)]))
    return objects


def ade_sample(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Bands of ADE classes plus one rectangle, 64x64.

    Returns:
        tuple[np.ndarray, np.ndarray]: BGR image (64, 64, 3) and ADE label
        map (64, 64) with 0 (ignore) on the one-pixel borders between
        regions and ``1 + class index`` elsewhere.
    """
    colours = list(ADE_CLASSES.values())
    seg = np.zeros((64, 64), np.uint8)
    cuts = np.sort(rng.choice(np.arange(12, 52), size=2, replace=False))
    for top, bottom in zip([0, *cuts], [*cuts, 64]):
        seg[top:bottom] = 1 + rng.integers(0, len(colours))
    x, y = rng.integers(4, 36, size=2)
    w, h = rng.integers(12, 26, size=2)
    seg[y:y + h, x:x + w] = 1 + rng.integers(0, len(colours))
    img = add_noise(rng, np.array(colours)[seg - 1], std=14)
    # ADE marks unlabelled pixels 0: do so on the region borders.
    border = np.zeros_like(seg, dtype=bool)
    border[1:] |= seg[1:] != seg[:-1]
    border[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    seg[border] = 0
    img[border] = 0
    return img, seg


def write_image(path: str, img: np.ndarray) -> None:
    """Write ``img`` to ``path``, creating its directory."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, img):
        raise OSError(f'Failed to write {path}')


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path``, creating its directory."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def make_folder_cls(root: str, rng: np.random.Generator) -> None:
    """ImageNet-style class folders: {train,val}/<class>/NNNN.jpg."""
    classes = list(FOLDER_CLS_CLASSES)
    for split, num in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        for i in range(num):
            label = i % len(classes)
            write_image(
                osp.join(root, split, classes[label], f'{i:04d}.jpg'),
                folder_cls_image(rng, label))


def make_annfile_cls(root: str, rng: np.random.Generator) -> None:
    """images/{train,val}/NNNN.jpg listed with labels in meta/*.txt."""
    for split, num in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        lines = []
        for i in range(num):
            label = i % len(ANNFILE_CLS_CLASSES)
            name = f'{split}/{i:04d}.jpg'
            write_image(
                osp.join(root, 'images', name), annfile_cls_image(rng, label))
            lines.append(f'{name} {label}\n')
        write_text(osp.join(root, 'meta', f'{split}.txt'), ''.join(lines))


def make_coco(root: str, rng: np.random.Generator, classes: dict,
              shape: str) -> None:
    """COCO-json detection: {train,val}/NNNN.jpg and
    annotations/instances_{train,val}.json, category ids from 1."""
    categories = [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(classes)
    ]
    for split, num in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        images, annotations = [], []
        for i in range(num):
            width, height = (int(s) for s in rng.choice([96, 112, 128], 2))
            img = noisy_background(rng, height, width)
            for label, bbox in draw_objects(rng, img, list(classes.values()),
                                            shape):
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=i + 1,
                        category_id=label + 1,
                        bbox=bbox,
                        area=bbox[2] * bbox[3],
                        iscrowd=0))
            file_name = f'{i:04d}.jpg'
            write_image(osp.join(root, split, file_name), add_noise(rng, img))
            images.append(
                dict(
                    id=i + 1, file_name=file_name, width=width, height=height))
        write_text(
            osp.join(root, 'annotations', f'instances_{split}.json'),
            json.dumps(
                dict(
                    info=dict(description='xlearner_mm demo data'),
                    licenses=[],
                    images=images,
                    annotations=annotations,
                    categories=categories)))


def make_ade(root: str, rng: np.random.Generator) -> None:
    """ADE20K layout: images/<split>/NNNN.jpg, annotations/<split>/NNNN.png."""
    for split, num in (('training', NUM_TRAIN), ('validation', NUM_VAL)):
        for i in range(num):
            img, seg = ade_sample(rng)
            write_image(osp.join(root, 'images', split, f'{i:04d}.jpg'), img)
            write_image(
                osp.join(root, 'annotations', split, f'{i:04d}.png'), seg)


SOURCES: List[Tuple[str, Callable]] = [
    ('folder_cls', make_folder_cls),
    ('annfile_cls', make_annfile_cls),
    ('coco_a', lambda root, rng: make_coco(root, rng, COCO_A_CLASSES, 'box')),
    ('coco_b', lambda root, rng: make_coco(root, rng, COCO_B_CLASSES, 'disk')),
    ('ade', make_ade),
]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write the tiny multi-source multi-task demo dataset.')
    parser.add_argument('--out', default='data/demo', help='output directory')
    parser.add_argument(
        '--seed', type=int, default=0, help='random seed of the content')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Write every source under ``--out`` and return that directory."""
    args = parse_args(argv)
    out = args.out
    for index, (name, make) in enumerate(SOURCES):
        # One generator per source: a source's content does not depend on
        # the others.
        rng = np.random.default_rng([args.seed, index])
        target = osp.join(out, name)
        partial = osp.join(out, f'.{name}.partial')
        if osp.exists(partial):  # left by an interrupted run
            shutil.rmtree(partial)
        make(partial, rng)
        if osp.isdir(target):
            shutil.rmtree(target)
        os.rename(partial, target)
    print(f'Demo data written to {out}: {", ".join(n for n, _ in SOURCES)}')
    return out


if __name__ == '__main__':
    main()
