"""Linear-probe evaluation of a backbone (paper Sec. 4.2, "AVG Cls").

The paper follows CLIP's protocol (Radford et al. 2021, its ref. [49], App.
A.3): features of a frozen backbone, a multinomial logistic regression fitted
with L-BFGS (at most 1,000 iterations), the L2 strength lambda searched on a
validation split over values spread evenly (in log space) between 1e-1 and
1e-5, the classifier refitted on train + val with the chosen lambda, and the
top-1 accuracy reported on the test split. Images are 224x224.

Pieces (each usable on its own):

- :func:`build_frozen_backbone`: a backbone from its config, weights loaded
  strictly from an export, a model-zoo or a training checkpoint, frozen, in
  eval mode.
- :func:`extract_features`: global-average-pooled last-stage features of a
  whole dataloader, ``(N, C)``, with the labels ``(N, )``.
- :class:`LogisticRegression`: the classifier, fitted with
  :class:`torch.optim.LBFGS` on the full batch.
- :func:`lambda_grid`, :func:`stratified_holdout`, :func:`select_lambda`,
  :func:`linear_probe`: the lambda search and the final fit.
- :func:`build_probe_dataloaders` and :func:`run_linear_probe`: the whole
  protocol from a linear-probe config (``tools/linear_probe.py``), and
  :func:`format_probe_table`: its results as the table the tool prints.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.runner import Runner
from torch import Tensor, nn

from xlearner_mm.datasets.multi_source_dataset import check_local_paths
from xlearner_mm.models.utils.zoo_init import ZooPretrainedInit
from xlearner_mm.registry import MODELS

# Every sample once, in order (features and labels stay aligned).
DEFAULT_DATALOADER = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False))


def build_frozen_backbone(backbone_cfg: dict,
                          checkpoint: Optional[str],
                          device: str = 'cpu') -> nn.Module:
    """Build a backbone, load its weights strictly, and freeze it.

    Args:
        backbone_cfg (dict): The backbone config (scope-prefixed type, built
            by ``xlearner_mm``'s ``MODELS``), e.g. mmdet's ResNet-50 with
            ``out_indices=(3, )`` as in configs/linear_probe/_base_/default.py.
            A backbone built from its checkpoint
            (``PretrainedExpandedBackbone``) takes ``checkpoint`` where its
            config has ``checkpoint=None``, and loads it itself.
        checkpoint (str, optional): The backbone's weights in any layout
            ``ZooPretrained`` reads: an exported backbone, an mmpretrain /
            mmdet / mmseg model, torchvision, a Squeeze checkpoint. None
            probes the backbone's own random initialisation (the
            random-init row of a transfer table).
        device (str): Where the backbone runs. Defaults to 'cpu'.

    Returns:
        nn.Module: The backbone in eval mode (BatchNorm uses its running
        statistics) with ``requires_grad=False`` on every parameter.

    Raises:
        RuntimeError: When the checkpoint's backbone keys do not match the
            backbone's exactly; the message names the file and the missing
            and unexpected keys.
    """
    builds_from_checkpoint = ('checkpoint' in backbone_cfg
                              and backbone_cfg['checkpoint'] is None)
    if builds_from_checkpoint:
        backbone_cfg = dict(backbone_cfg, checkpoint=checkpoint)
    backbone = MODELS.build(backbone_cfg)
    if checkpoint is None:
        backbone.init_weights()
    elif not builds_from_checkpoint:
        try:
            # strict: a backbone half-initialised from its random init
            # would give a meaningless probe result without any other sign.
            ZooPretrainedInit(checkpoint)(backbone)
        except KeyError as error:
            raise RuntimeError(
                f'checkpoint {checkpoint} does not fit the backbone '
                f'{backbone_cfg["type"]}: {error}') from error
    backbone.requires_grad_(False)
    backbone.to(device)
    # not chained: mmdet's ResNet.train() (which eval() calls) returns None
    backbone.eval()
    return backbone


@torch.no_grad()
def extract_features(backbone: nn.Module,
                     data_preprocessor: nn.Module,
                     dataloader,
                     log_prefix: str = '',
                     log_interval: int = 50) -> Tuple[Tensor, Tensor]:
    """Global-average-pooled last-stage features of every sample.

    Args:
        backbone (nn.Module): A frozen backbone (see
            :func:`build_frozen_backbone`); its output is a tensor
            ``(B, C, H, W)`` or a tuple of them, of which the last is used.
        data_preprocessor (nn.Module): Stacks and normalises a batch (e.g.
            ``mmpretrain.ClsDataPreprocessor``), on the backbone's device.
        dataloader: Yields ``dict(inputs=[...], data_samples=[...])`` with a
            single-label ``gt_label`` in every data sample; it should not
            shuffle or drop samples.
        log_prefix (str): Prepended to the progress messages.
        log_interval (int): Log progress every this many batches.

    Returns:
        tuple[Tensor, Tensor]: float32 features ``(N, C)`` and int64 labels
        ``(N, )``, on the CPU.
    """
    feats, labels = [], []
    for i, data in enumerate(dataloader):
        data = data_preprocessor(data, False)
        outs = backbone(data['inputs'])
        last = outs[-1] if isinstance(outs, (tuple, list)) else outs
        feats.append(last.float().mean(dim=(2, 3)).cpu())
        labels.append(
            torch.cat([sample.gt_label
                       for sample in data['data_samples']]).cpu())
        if (i + 1) % log_interval == 0 or i + 1 == len(dataloader):
            print_log(
                f'{log_prefix}extracted batch {i + 1}/{len(dataloader)}',
                logger='current')
    return torch.cat(feats), torch.cat(labels).long()


class LogisticRegression:
    """Multinomial logistic regression fitted with L-BFGS on the full batch.

    The objective, over the ``N`` training samples ``(x_i, y_i)``, is::

        L(W, b) = 1/N * sum_i CE(W x_i + b, y_i) + lam / 2 * ||W||_F^2

    with the bias ``b`` not penalised. This is scikit-learn's
    ``LogisticRegression(C=1 / (lam * N))``, which CLIP used (sklearn >= 1.2
    minimises exactly this mean-loss form with L-BFGS), so ``tol`` has the
    same meaning as sklearn's: the fit stops once the largest absolute entry
    of the gradient is at most ``tol`` (``tolerance_grad`` of
    :class:`torch.optim.LBFGS`), or after ``max_iter`` L-BFGS iterations
    (or when a step changes the loss or the parameters by less than
    ``64 * eps`` of ``dtype``, i.e. no more progress is possible).
    The problem is convex (strictly in ``W``), so the zero initialisation
    only affects how quickly the optimum is reached.

    Args:
        lam (float): L2 strength lambda (> 0).
        max_iter (int): Most L-BFGS iterations. Defaults to 1000 (paper).
        tol (float): Gradient tolerance (max-abs). Defaults to 1e-4
            (sklearn's default).
        history_size (int): L-BFGS memory. Defaults to 10 (scipy's, which
            sklearn uses).
        dtype (torch.dtype): Precision of the fit. Defaults to float64, as
            scipy's L-BFGS: a float32 objective stalls the line search before
            a 1e-4 gradient at small lambda.

    Attributes (after :meth:`fit`): ``weight`` ``(K, C)``, ``bias`` ``(K, )``,
    ``n_iter`` (L-BFGS iterations run) and ``converged`` (gradient reached
    ``tol``).
    """

    def __init__(self,
                 lam: float,
                 max_iter: int = 1000,
                 tol: float = 1e-4,
                 history_size: int = 10,
                 dtype: torch.dtype = torch.float64) -> None:
        if not lam > 0:
            raise ValueError(f'lambda must be > 0, got {lam}')
        self.lam = lam
        self.max_iter = max_iter
        self.tol = tol
        self.history_size = history_size
        self.dtype = dtype

    def objective(self, feats: Tensor, labels: Tensor, weight: Tensor,
                  bias: Tensor) -> Tensor:
        """The regularised loss L(W, b) above (a scalar)."""
        return (F.cross_entropy(feats @ weight.t() + bias, labels) +
                0.5 * self.lam * weight.pow(2).sum())

    def fit(self, feats: Tensor, labels: Tensor,
            num_classes: int) -> 'LogisticRegression':
        """Fit on features ``(N, C)`` and labels ``(N, )`` in
        ``[0, num_classes)``; runs on the features' device."""
        feats = feats.to(self.dtype)
        weight = feats.new_zeros(
            num_classes, feats.shape[1], requires_grad=True)
        bias = feats.new_zeros(num_classes, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [weight, bias],
            lr=1,
            max_iter=self.max_iter,
            tolerance_grad=self.tol,
            # Stop on stalled progress only at float precision, like the
            # ftol=64*eps sklearn gives scipy (torch's default 1e-9 can stop
            # short of `tol`).
            tolerance_change=64 * torch.finfo(self.dtype).eps,
            history_size=self.history_size,
            line_search_fn='strong_wolfe')

        def closure():
            optimizer.zero_grad()
            loss = self.objective(feats, labels, weight, bias)
            loss.backward()
            return loss

        optimizer.step(closure)
        closure()  # the gradient at the returned point
        grad_max = max(weight.grad.abs().max(), bias.grad.abs().max()).item()
        self.n_iter = optimizer.state[weight]['n_iter']
        self.converged = grad_max <= self.tol
        if not self.converged:
            # Like sklearn's ConvergenceWarning: the result is still used.
            print_log(
                f'L-BFGS (lambda={self.lam:.3g}) stopped after {self.n_iter} '
                f'iterations with gradient max-abs {grad_max:.2e} > tol '
                f'{self.tol:.0e}',
                logger='current')
        self.weight = weight.detach()
        self.bias = bias.detach()
        return self

    def logits(self, feats: Tensor) -> Tensor:
        """Class scores ``(N, K)`` of features ``(N, C)``."""
        return feats.to(self.weight) @ self.weight.t() + self.bias

    def predict(self, feats: Tensor) -> Tensor:
        """Predicted class indices ``(N, )``."""
        return self.logits(feats).argmax(dim=1)


def lambda_grid(
    num_lambdas: int = 9,
    lambda_range: Sequence[float] = (1e-1, 1e-5)
) -> List[float]:
    """``num_lambdas`` values evenly spaced in log space over
    ``lambda_range``, both ends included, in the given order.

    The default 9 values over 1e-1..1e-5 are two per decade (1e-1, 3.16e-2,
    1e-2, ...): the paper only says the set spreads evenly over the range,
    and linear-probe accuracy changes little within half a decade of lambda
    (CLIP's own search stops refining at 8 steps per decade over a 12-decade
    range, the 2-per-decade start here costs 9 fits per dataset).
    """
    if num_lambdas < 2:
        raise ValueError(f'num_lambdas must be >= 2, got {num_lambdas}')
    start, end = (math.log10(v) for v in lambda_range)
    return [
        10**(start + (end - start) * i / (num_lambdas - 1))
        for i in range(num_lambdas)
    ]


def stratified_holdout(labels: Tensor,
                       fraction: float = 0.2,
                       seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Split sample indices into train and validation, class by class.

    From each class, ``round(fraction * n_c)`` samples (at most ``n_c - 1``,
    so that every class keeps a training sample) chosen by a permutation
    seeded with ``seed`` go to validation: the same labels always give the
    same split.

    Returns:
        tuple[Tensor, Tensor]: sorted train and val indices into ``labels``.
    """
    generator = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for cls in labels.unique(sorted=True):
        idx = (labels == cls).nonzero(as_tuple=True)[0]
        idx = idx[torch.randperm(len(idx), generator=generator)]
        num_val = min(int(round(fraction * len(idx))), len(idx) - 1)
        val_idx.append(idx[:num_val])
        train_idx.append(idx[num_val:])
    val_idx = torch.cat(val_idx).sort().values
    if len(val_idx) == 0:
        raise ValueError(
            f'holding out {fraction} of {len(labels)} training samples leaves '
            'no validation sample: give the dataset a val split')
    return torch.cat(train_idx).sort().values, val_idx


def _top1(logits: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy in percent of class scores ``(N, K)``."""
    return (logits.argmax(dim=1) == labels.to(
        logits.device)).double().mean().item() * 100


def select_lambda(train: Tuple[Tensor, Tensor], val: Tuple[Tensor, Tensor],
                  num_classes: int, lambdas: Sequence[float],
                  **fit_kwargs) -> Tuple[float, List[dict]]:
    """Fit on ``train`` for every lambda and pick the best on ``val``.

    The best lambda has the highest validation top-1; ties (frequent on
    small validation sets) go to the lower validation cross-entropy, which
    still ranks lambdas that classify the same samples correctly.

    Args:
        train, val: ``(features (N, C), labels (N, ))`` each.
        num_classes (int): K.
        lambdas: The candidates.
        **fit_kwargs: :class:`LogisticRegression`'s other arguments.

    Returns:
        tuple: the chosen lambda and, per candidate in order,
        ``dict(lambda_=..., top1=..., loss=..., n_iter=...)`` (validation
        top-1 in %, validation cross-entropy, L-BFGS iterations).
    """
    scores = []
    for lam in lambdas:
        model = LogisticRegression(lam, **fit_kwargs).fit(*train, num_classes)
        logits = model.logits(val[0])
        scores.append(
            dict(
                lambda_=lam,
                top1=_top1(logits, val[1]),
                loss=F.cross_entropy(logits, val[1].to(logits.device)).item(),
                n_iter=model.n_iter))
    best = max(scores, key=lambda score: (score['top1'], -score['loss']))
    return best['lambda_'], scores


def linear_probe(train: Tuple[Tensor, Tensor],
                 test: Tuple[Tensor, Tensor],
                 val: Optional[Tuple[Tensor, Tensor]] = None,
                 num_lambdas: int = 9,
                 lambda_range: Sequence[float] = (1e-1, 1e-5),
                 val_fraction: float = 0.2,
                 seed: int = 0,
                 device: str = 'cpu',
                 **fit_kwargs) -> dict:
    """The whole linear-probe protocol on extracted features.

    lambda is chosen on ``val`` when given (the dataset's own val split),
    otherwise on a :func:`stratified_holdout` of ``val_fraction`` of
    ``train``; as in CLIP, the final classifier is then fitted on train + val
    with that lambda and evaluated on ``test``.

    Args:
        train, test, val: ``(features (N, C), labels (N, ))`` each.
        num_lambdas, lambda_range: The grid (:func:`lambda_grid`).
        val_fraction (float): Held out of train when there is no ``val``.
        seed (int): Seed of the hold-out split.
        device (str): Where the fits run.
        **fit_kwargs: :class:`LogisticRegression`'s ``max_iter``, ``tol``,
            ``history_size``, ``dtype``.

    Returns:
        dict: ``num_train``, ``num_val``, ``num_test``, ``num_classes``,
        ``feature_dim``, ``val_source`` ('val split' or 'held-out ...'),
        ``best_lambda``, ``lambda_scores`` (:func:`select_lambda`'s list),
        ``final_n_iter`` and ``top1`` (test, %).
    """
    train = tuple(t.to(device) for t in train)
    test = tuple(t.to(device) for t in test)
    if val is None:
        val_source = f'held-out {val_fraction:g} of train (seed {seed})'
        train_idx, val_idx = stratified_holdout(train[1].cpu(), val_fraction,
                                                seed)
        fit_train = tuple(t[train_idx.to(device)] for t in train)
        val = tuple(t[val_idx.to(device)] for t in train)
        trainval = train
    else:
        val_source = 'val split'
        val = tuple(t.to(device) for t in val)
        fit_train = train
        trainval = tuple(torch.cat([a, b]) for a, b in zip(train, val))
    num_classes = int(max(t[1].max() for t in (train, val, test))) + 1
    best, scores = select_lambda(fit_train, val, num_classes,
                                 lambda_grid(num_lambdas, lambda_range),
                                 **fit_kwargs)
    final = LogisticRegression(best, **fit_kwargs).fit(*trainval, num_classes)
    return dict(
        num_train=len(fit_train[1]),
        num_val=len(val[1]),
        num_test=len(test[1]),
        num_classes=num_classes,
        feature_dim=train[0].shape[1],
        val_source=val_source,
        best_lambda=best,
        lambda_scores=scores,
        final_n_iter=final.n_iter,
        top1=_top1(final.logits(test[0]), test[1]))


def build_probe_dataloaders(cfg: Config) -> Dict[str, dict]:
    """Build the dataloader of every split of every dataset of a
    linear-probe config (which reads every annotation file), so that missing
    data fails before any feature is extracted.

    ``cfg.datasets[name][split]`` (split: ``train``, ``test``, optional
    ``val``) is a dataloader config; keys it leaves out come from
    ``cfg.dataloader``, then :data:`DEFAULT_DATALOADER`, and a dataset
    without ``pipeline`` gets ``cfg.pipeline``.

    Returns:
        dict: ``{name: {split: DataLoader}}``.

    Raises:
        FileNotFoundError: A ``data_root``/``ann_file`` is missing, or the
            dataset class cannot read its files; names the dataset.
    """
    dataloaders = {}
    for name, splits in cfg.datasets.items():
        missing = {'train', 'test'} - set(splits)
        if missing:
            raise KeyError(f'linear-probe dataset "{name}" lacks the '
                           f'{sorted(missing)} split(s) in `datasets.{name}`')
        dataloaders[name] = {}
        for split in ('train', 'val', 'test'):
            if split not in splits:
                continue
            loader_cfg = ConfigDict(copy.deepcopy(DEFAULT_DATALOADER))
            loader_cfg.update(copy.deepcopy(cfg.get('dataloader', {})))
            loader_cfg.update(copy.deepcopy(splits[split]))
            if 'pipeline' not in loader_cfg.dataset:
                if 'pipeline' not in cfg:
                    raise KeyError(f'datasets.{name}.{split}.dataset has no '
                                   'pipeline and the config no `pipeline`')
                loader_cfg.dataset.pipeline = copy.deepcopy(cfg.pipeline)
            check_local_paths(
                loader_cfg.dataset, f'linear-probe dataset "{name}" ({split} '
                f'split, {loader_cfg.dataset.get("type")})')
            try:
                dataloaders[name][split] = Runner.build_dataloader(loader_cfg)
            except (OSError, RuntimeError) as error:
                raise FileNotFoundError(
                    f'linear-probe dataset "{name}" ({split} split, '
                    f'{loader_cfg.dataset.get("type")}, data_root '
                    f'{loader_cfg.dataset.get("data_root")}) cannot be read: '
                    f'{error}') from error
    return dataloaders


def run_linear_probe(cfg: Config, checkpoint: Optional[str]) -> dict:
    """Run the linear-probe protocol of a config on a backbone checkpoint
    (None: on the backbone's random initialisation).

    Config keys: ``backbone`` (required),
    ``data_preprocessor`` (a dataset entry's own ``data_preprocessor`` dict
    is merged onto it, e.g. ``to_rgb=False`` for CIFAR's RGB arrays),
    ``pipeline``, ``dataloader``, ``datasets`` (see
    :func:`build_probe_dataloaders`), ``probe`` (:func:`linear_probe`'s
    ``num_lambdas``, ``lambda_range``, ``val_fraction``, ``seed``,
    ``max_iter``, ``tol``, ``history_size``) and ``device`` (default: cuda
    when available).

    Returns:
        dict: ``datasets`` ({name: :func:`linear_probe`'s result}) and
        ``average_top1`` (the mean top-1 over the datasets, "AVG Cls").
    """
    device = cfg.get('device') or ('cuda'
                                   if torch.cuda.is_available() else 'cpu')
    dataloaders = build_probe_dataloaders(cfg)
    if 'backbone' not in cfg:
        raise KeyError('the linear-probe config has no `backbone`')
    backbone = build_frozen_backbone(cfg.backbone, checkpoint, device)
    probe_cfg = dict(cfg.get('probe', {}))
    results = {}
    for name, loaders in dataloaders.items():
        preprocessor_cfg = copy.deepcopy(cfg.data_preprocessor)
        preprocessor_cfg.update(cfg.datasets[name].get('data_preprocessor',
                                                       {}))
        data_preprocessor = MODELS.build(preprocessor_cfg).to(device)
        feats = {
            split:
            extract_features(
                backbone,
                data_preprocessor,
                loader,
                log_prefix=f'[{name}/{split}] ')
            for split, loader in loaders.items()
        }
        results[name] = linear_probe(
            feats['train'],
            feats['test'],
            feats.get('val'),
            device=device,
            **probe_cfg)
        print_log(
            f'[{name}] best lambda {results[name]["best_lambda"]:.3g} '
            f'({results[name]["val_source"]}), test top-1 '
            f'{results[name]["top1"]:.2f}',
            logger='current')
    average = sum(r['top1'] for r in results.values()) / len(results)
    return dict(datasets=results, average_top1=average)


def format_probe_table(results: dict) -> str:
    """The per-dataset results of :func:`run_linear_probe` and their average
    as a text table."""
    header = (f'{"dataset":<16}{"#train":>8}{"#val":>8}{"#test":>8}'
              f'{"best lambda":>13}{"top-1":>8}')
    lines = [header, '-' * len(header)]
    for name, res in results['datasets'].items():
        lines.append(f'{name:<16}{res["num_train"]:>8}{res["num_val"]:>8}'
                     f'{res["num_test"]:>8}{res["best_lambda"]:>13.3g}'
                     f'{res["top1"]:>8.2f}')
    lines.append('-' * len(header))
    lines.append(f'{"average":<16}{"":>8}{"":>8}{"":>8}{"":>13}'
                 f'{results["average_top1"]:>8.2f}')
    return '\n'.join(lines)
