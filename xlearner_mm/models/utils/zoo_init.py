"""``ZooPretrained``: strict, format-aware loading of a backbone from a
model-zoo or X-Learner checkpoint.

mmengine's ``Pretrained`` init loads non-strictly and only logs the keys it
could not match, so a checkpoint of the wrong layout (a detector checkpoint
without ``prefix='backbone.'``, an Expansion checkpoint read with
``prefix='backbone.'``, an mmseg ResNetV1c into a plain ResNet) silently
leaves some or all of the backbone at its random initialisation.
``ZooPretrained`` finds the backbone inside the checkpoint by its layout and
loads it strictly.
"""
from typing import Dict, Optional

from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import nn

from xlearner_mm.structures import TaskLayout, read_checkpoint
from xlearner_mm.utils.compat import record_init_info

# torchvision's ResNet classifier; its other keys are mm*'s ResNet keys.
_TORCHVISION_HEAD = 'fc.'
# Keys listed in an error message before it says "and N more".
_SHOWN_KEYS = 8


def _listing(keys) -> str:
    keys = sorted(keys)
    more = len(keys) - _SHOWN_KEYS
    return ', '.join(keys[:_SHOWN_KEYS]) + (f' and {more} more'
                                            if more > 0 else '')


# Registered in mmengine's root registry: ``init_cfg`` is built from
# WEIGHT_INITIALIZERS of the current default scope, and every scope's
# registry (mmdet, mmseg, mmpretrain, xlearner_mm) falls back to the root.
@WEIGHT_INITIALIZERS.register_module(name='ZooPretrained')
class ZooPretrainedInit:
    """Load a backbone strictly from a checkpoint of any of these layouts:

    ======================================  =================================
    checkpoint                              backbone keys taken
    ======================================  =================================
    X-Learner Expansion (``XLearner``)      ``backbone.streams.<stream>.*``
    X-Learner Squeeze (``MultiTaskDistiller``) ``student.*``
    mmpretrain / mmdet / mmseg model        ``backbone.*``
    exported backbone / bare state dict     all keys
    torchvision ResNet state dict           all keys but ``fc.*``
    ======================================  =================================

    ``{'state_dict': ..., 'meta': ...}`` (mmengine) and bare state dicts are
    both read; a ``module.`` (DDP) prefix is removed. torchvision's ResNet
    keys (``conv1``, ``bn1``, ``layer1.0.downsample.0``, ...) are those of
    mmdet's, mmseg's and mmpretrain's ``ResNet``, so no renaming is needed;
    its classifier ``fc.*`` is dropped when the module has no ``fc``.

    Unlike ``Pretrained``, every key of the module must be in the checkpoint
    and every backbone key of the checkpoint must be in the module; anything
    else raises a ``KeyError`` naming the file and the keys.

    Two differences from ``Pretrained`` follow from mmengine's
    ``BaseModule.init_weights``, which runs an ``init_cfg`` of any type other
    than ``'Pretrained'`` *before* the submodules' own ``init_weights``:

    - the submodules are marked initialised, so their ``init_cfg`` does not
      overwrite the loaded weights;
    - ``zero_init_residual`` is turned off on the module: mmpretrain's ResNet
      family zeroes the last norm of every residual block after its init_cfg
      unless that init_cfg's type is literally ``'Pretrained'``.

    Examples:
        >>> init_cfg = dict(type='ZooPretrained',
        ...                 checkpoint='work_dirs/expansion_r50/iter_150000.pth',
        ...                 task='det')

    Args:
        checkpoint (str): Path or URL (any scheme mmengine's
            ``CheckpointLoader`` reads, e.g. ``torchvision://resnet50``).
        prefix (str, optional): Key prefix of the backbone in the checkpoint;
            overrides the detection of the layout. Defaults to None.
        task (str, optional): The task whose stream to take from an
            Expansion checkpoint (the checkpoint's saved :class:`TaskLayout`
            names the stream). Required for that layout only, unless its
            backbone has one stream (Hard-sharing). Defaults to None.
        map_location (str): Defaults to ``'cpu'``.

    Examples:
        # the det teacher's backbone in
        # configs/xlearner/expansion_r50_plusplus.py: the ``backbone.*`` keys
        # of an mmdet Faster R-CNN checkpoint
        init_cfg = dict(type='ZooPretrained', checkpoint=det_teacher)
        # one stream of an Expansion checkpoint
        init_cfg = dict(type='ZooPretrained', task='det',
                        checkpoint='work_dirs/expansion_r50/iter_150000.pth')
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: Optional[str] = None,
                 task: Optional[str] = None,
                 map_location: str = 'cpu') -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.task = task
        self.map_location = map_location

    def _read(self) -> Dict[str, object]:
        return read_checkpoint(self.checkpoint, 'ZooPretrained checkpoint',
                               self.map_location)

    def _backbone_prefix(self, checkpoint: dict) -> str:
        """The prefix of the backbone's keys in ``checkpoint``."""
        if self.prefix is not None:
            return self.prefix
        keys = checkpoint['state_dict']
        streams = TaskLayout.stream_tasks(keys)
        if streams:  # XLearner (Expansion Stage)
            # Checkpoints without a saved layout have a stream per task.
            layout = TaskLayout.from_meta(
                checkpoint['meta']) or TaskLayout(tasks=streams)
            if self.task is None and layout.shared:
                return layout.stream_prefix(layout.tasks[0])
            if self.task not in layout.tasks:
                raise KeyError(
                    f'ZooPretrained: {self.checkpoint} is an X-Learner '
                    f'Expansion checkpoint with streams '
                    f'{sorted(layout.tasks)}; set init_cfg.task to one of '
                    f'them (got {self.task!r})')
            return layout.stream_prefix(self.task)
        # MultiTaskDistiller (Squeeze Stage), then mm* models.
        for prefix in (TaskLayout.STUDENT, TaskLayout.BACKBONE):
            if any(k.startswith(prefix) for k in keys):
                return prefix
        return ''

    def __call__(self, module: nn.Module) -> None:
        checkpoint = self._read()
        state = checkpoint['state_dict']
        prefix = self._backbone_prefix(checkpoint)
        backbone = {k[len(prefix):]: v
                    for k, v in state.items() if k.startswith(prefix)}
        if not backbone:
            raise KeyError(f'ZooPretrained: no key of {self.checkpoint} '
                           f'starts with prefix "{prefix}"')
        expected = set(module.state_dict())
        if not prefix and not any(
                k.startswith(_TORCHVISION_HEAD) for k in expected):
            backbone = {k: v for k, v in backbone.items()
                        if not k.startswith(_TORCHVISION_HEAD)}
        # Checkpoints older than PyTorch 0.4.1 (torchvision's ResNets among
        # them) have no BN step counters; BN fills them in when loading.
        missing = {k for k in expected - set(backbone)
                   if not k.endswith('num_batches_tracked')}
        unexpected = set(backbone) - expected
        if missing or unexpected:
            raise KeyError(
                f'ZooPretrained: the keys under "{prefix}" in '
                f'{self.checkpoint} do not match {type(module).__name__}: '
                f'missing [{_listing(missing)}], unexpected '
                f'[{_listing(unexpected)}]. Check the checkpoint, '
                'init_cfg.prefix / init_cfg.task, and the backbone config '
                '(depth, stem, widths)')
        module.load_state_dict(backbone, strict=True)
        print_log(
            f'ZooPretrained: loaded {len(backbone)} tensors under '
            f'"{prefix}" from {self.checkpoint} into '
            f'{type(module).__name__}', logger='current')
        for sub in module.modules():
            if sub is not module and isinstance(sub, BaseModule):
                sub.is_init = True
        if getattr(module, 'zero_init_residual', False):
            module.zero_init_residual = False
        record_init_info(module, f'ZooPretrained: load from {self.checkpoint}')
