"""xlearner_mm's registries.

Each registry is a child of mmengine's root registry of the same kind, with
scope ``xlearner_mm``. A config with ``default_scope='xlearner_mm'`` finds this
package's modules by their plain names (``locations`` imports them on first
use) and reaches other codebases' modules through their scope prefix
(``mmdet.FasterRCNN``, ``mmseg.PackSegInputs``, ``mmpretrain.Accuracy``).
Kinds this package registers nothing of (optimizers, metrics, visualizers)
have no child here: mmengine then resolves them in its root registries.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['xlearner_mm.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['xlearner_mm.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['xlearner_mm.datasets'])
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['xlearner_mm.models'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['xlearner_mm.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['xlearner_mm.engine'])
