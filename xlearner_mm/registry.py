"""xlearner_mm's registries.

Each registry is a child of mmengine's root registry of the same kind, with
scope ``xlearner_mm``. A config with ``default_scope='xlearner_mm'`` finds this
package's modules by their plain names (``locations`` imports them on first
use) and reaches other codebases' modules through their scope prefix
(``mmdet.FasterRCNN``, ``mmseg.PackSegInputs``, ``mmpretrain.Accuracy``).
Every kind the Runner builds has a child here, also those this package
registers nothing of (optimizers, metrics, visualizers, ...): a lookup then
falls through to mmengine's root registry without the "Failed to search
registry with scope" warning mmengine logs for a scope it does not know.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as \
    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import \
    WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['xlearner_mm.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['xlearner_mm.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, locations=['xlearner_mm.datasets'])
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['xlearner_mm.models'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['xlearner_mm.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['xlearner_mm.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['xlearner_mm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['xlearner_mm.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS)
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS)
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS)
METRICS = Registry('metric', parent=MMENGINE_METRICS)
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR)
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS)
VISBACKENDS = Registry(
    'vis_backend', parent=MMENGINE_VISBACKENDS, locations=['xlearner_mm.visualization'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS)
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS)
