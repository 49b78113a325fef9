import math
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from xlearner_mm.registry import MODELS


def _ratio(fine: int, coarse: int, what: str) -> int:
    """The integer stride that takes a map of stride ``fine`` to ``coarse``."""
    if coarse % fine:
        raise ValueError(
            f'{what}: cannot reach output stride {coarse} from stride {fine} '
            'with a strided convolution (reconciliation only flows from finer '
            'or equal resolutions to coarser ones)')
    return coarse // fine


class ReconciliationLink(NamedTuple):
    """Where a reconciliation layer :math:`\\gamma_{j \\to i}^{k \\to t}`
    reads and writes: level j (0-based) of task k's stream into level i of
    task t's."""
    source: str  # k
    source_level: int  # j
    target: str  # t
    target_level: int  # i

    def __str__(self) -> str:
        return (f'gamma_{self.source_level}->{self.target_level}'
                f'^{self.source}->{self.target}')


class ReconciliationLayer(nn.Module):
    """One reconciliation layer :math:`\\gamma_{j \\to i}^{k \\to t}`.

    It is :math:`|i - j|` level steps followed by one :math:`\\gamma_b`
    (paper Sec. 3.2). The steps are :math:`\\gamma_a` from a shallower level
    (X-Learner, j < i) and :math:`\\gamma_c` from a deeper one (X-Learner_t,
    j > i, paper Sec. 3.4):

    - ``gamma_a``: one level step up along task k's stream. A 3x3 strided
      conv (stride :math:`s_{m+1}^k / s_m^k`, 2 for ResNet) + norm that
      changes channels from :math:`C_m^k` to :math:`C_{m+1}^k`.
    - ``gamma_c``: one level step down along task k's stream, "an
      up-sampling layer and a convolutional layer" in the paper's order:
      nearest up-sampling by :math:`s_m^k / s_{m-1}^k`, then a 3x3 conv +
      norm from :math:`C_m^k` to :math:`C_{m-1}^k` at the finer level (the
      conv smooths the up-sampled blocks; it costs 4x the MACs of a conv
      before the up-sampling).
    - ``gamma_b``: the cross-task bridge at level i. A 1x1 conv + norm that
      changes channels from task k's width :math:`C_i^k` to task t's
      :math:`C_i^t`. Its stride is 1 when both streams have the same stride
      at level i (the usual case) and bridges the difference otherwise.

    The activation precedes every conv but the first, which reads
    :math:`\\mathcal{E}_j^k` itself (a stage output, already activated, and
    a view of another stream's feature that must not be changed in place).
    The output ends with a norm layer (no activation) since it is added to
    :math:`\\mathcal{E}_i^t`.

    Why the bridge comes last: the level steps then read
    :math:`\\mathcal{E}_j^k` directly with a strided conv whose input needs
    no gradient (it is detached), and the 1x1 bridge, its norm and its
    activation run at level i's resolution instead of level j's. The
    layers are memory-bound (a few channels per group), so the
    full-resolution maps are what costs. With two ResNet-50 streams at
    224x224 (``configs/xlearner/expansion_r50.py``) the neck's
    forward+backward takes 28% less time on CPU than with the bridge
    first, for the same conv MACs (with widths doubling per level, a
    grouped 1x1 conv costs the same at level i as at level j) and 5.82M
    instead of 5.04M parameters.

    Args:
        level_channels (Sequence[int]): Task k's widths
            :math:`(C_j^k, ..., C_i^k)`, from level j to level i.
        out_channels (int): :math:`C_i^t`.
        step_strides (Sequence[int]): The resolution ratio of each step
            (:math:`|i - j|` of them): the stride of a ``gamma_a``, the
            up-sampling factor of a ``gamma_c``.
        bridge_stride (int): Stride of ``gamma_b``.
        groups (int): Groups of every conv, reduced to a divisor of its
            channels.
        norm_cfg (dict): Norm layer config.
        act_cfg (dict): Activation before every conv but the first.
        upsample (bool): Steps down (``gamma_c``) instead of up
            (``gamma_a``). Defaults to False.
    """

    def __init__(self, level_channels: Sequence[int], out_channels: int,
                 step_strides: Sequence[int], bridge_stride: int, groups: int,
                 norm_cfg: dict, act_cfg: dict, upsample: bool = False) -> None:
        super().__init__()
        assert len(step_strides) == len(level_channels) - 1

        def conv(cin, cout, kernel_size, stride, act):
            return ConvModule(
                cin,
                cout,
                kernel_size=kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=math.gcd(groups, cin, cout),
                norm_cfg=norm_cfg,
                act_cfg=act_cfg if act else None,
                order=('act', 'conv', 'norm'))

        steps = nn.ModuleList()
        for m, (cin, cout, ratio) in enumerate(
                zip(level_channels[:-1], level_channels[1:], step_strides)):
            if upsample:  # nearest up-sampling commutes with the activation
                steps.append(nn.Sequential(
                    nn.Upsample(scale_factor=ratio, mode='nearest'),
                    conv(cin, cout, 3, 1, m)))
            else:
                steps.append(conv(cin, cout, 3, ratio, m))
        self.step_name = 'gamma_c' if upsample else 'gamma_a'
        self.add_module(self.step_name, steps)
        self.gamma_b = conv(level_channels[-1], out_channels, 1,
                            bridge_stride, len(steps))

    @property
    def steps(self) -> nn.ModuleList:
        """The level steps: ``gamma_a`` or ``gamma_c``."""
        return getattr(self, self.step_name)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_j^k, H_j^k, W_j^k) -> (N, C_i^t, H_i^t, W_i^t)."""
        for step in self.steps:
            x = step(x)
        return self.gamma_b(x)


@MODELS.register_module()
class ReconciliationNeck(BaseModule):
    """Reconciliation layers joining the sub-backbones (paper Eq. 2).

    For every task t and level i, the fused output is

    .. math::
        F_i^t = \\mathcal{E}_i^t + \\sum_{k \\neq t} \\sum_{j \\leq i}
                \\gamma_{j \\to i}^{k \\to t}(\\mathcal{E}_j^k)

    with one :class:`ReconciliationLayer` per (k, t, j, i), i.e.
    T(T-1)D(D+1)/2 layers for T tasks of D levels. Their inputs are detached
    (paper Sec. 3.2), so task t's loss only trains its own stream and the
    layers that feed it.

    ``direction='top_down'`` is X-Learner_t (paper Sec. 3.4, Tab. 6): the
    layers read the other tasks' *deeper* levels, :math:`\\sum_{j \\geq i}`,
    and step down with :math:`\\gamma_c` (up-sampling + conv) instead of
    :math:`\\gamma_a`. With every level read it has as many layers,
    T(T-1)D(D+1)/2, by symmetry (level i reads D - i + 1 levels, 1-based,
    instead of i).

    A level :math:`F_i^t` that no head of task t reads (a classifier pools
    only the last level; an FCN head with ``in_index=3`` too) would have
    layers that never get a gradient: besides being dead weight they make
    DistributedDataParallel fail unless it searches the autograd graph for
    unused parameters in every iteration (``find_unused_parameters``).
    ``out_levels`` names the levels that are read; the others are returned
    as the plain :math:`\\mathcal{E}_i^t` and get no layers, so the neck has
    :math:`(T-1)\\sum_t\\sum_{i \\in L_t} i` layers bottom-up and
    :math:`(T-1)\\sum_t\\sum_{i \\in L_t} (D - i + 1)` top-down (1-based i),
    both T(T-1)D(D+1)/2 when every level is read. E.g. two ResNet-50
    streams with ``out_levels=dict(cls=(3, ))``: 4 + 10 = 14 layers
    bottom-up, 1 + 10 = 11 top-down.

    ``in_channels`` and ``strides`` are normally filled in by
    :class:`XLearner` from the :class:`ExpandedBackbone`.

    Args:
        in_channels (dict[str, Sequence[int]]): :math:`C_i^t` per task.
        strides (dict[str, Sequence[int]]): Output stride per task and level.
        groups (int): Groups of the reconciliation convs (each reduced to a
            divisor of its channels). Grouped convs keep the layers cheap
            next to the streams. Measured with two ResNet-50 streams at
            224x224: with 32 groups the layers into one task cost 8.6% of a
            stream's forward conv MACs (6.3M parameters in all, every level
            read); ``groups=1`` makes them dense, at 2.8x a stream's MACs and
            199M parameters.
            Defaults to 32.
        detach_inputs (bool): Cut the graph at the layers' inputs, as the
            paper does. Defaults to True.
        direction (str): ``'bottom_up'`` (X-Learner: level i reads levels
            j <= i) or ``'top_down'`` (X-Learner_t: j >= i). Defaults to
            ``'bottom_up'``, the paper's X-Learner.
        out_levels (dict[str, Sequence[int]], optional): The 0-based levels
            :math:`L_t` of each task that its heads read, e.g.
            ``dict(cls=(3, ))``; tasks left out read every level. Defaults to
            None (every level of every task).
        norm_cfg (dict): Defaults to ``dict(type='BN')``.
        act_cfg (dict): Defaults to ``dict(type='ReLU')``.
        zero_init_last_norm (bool): Start the scale of every layer's last
            norm (``gamma_b``'s) at 0, so that at tau
            :math:`F_i^t = \\mathcal{E}_i^t` and the layers grow in, as a
            residual branch with zero-initialised last BN does. With scale 1
            (BN's own start) each layer adds a unit-variance term at tau.
            The paper only says the weights are Glorot-initialised
            (docs/fidelity.md gives the choice and its measurement).
            Defaults to False.
        init_cfg (dict | list[dict]): Defaults to Glorot (Xavier) uniform on
            the convs, as in the paper.

    Examples:
        # model.neck of configs/xlearner/expansion_r50.py: the classifier
        # reads the last level only
        # (direction='top_down' is X-Learner_t's)
        neck = dict(
            type='ReconciliationNeck', groups=32, out_levels=dict(cls=(3, )),
            direction='bottom_up')
    """
    DIRECTIONS = ('bottom_up', 'top_down')

    def __init__(self,
                 in_channels: Dict[str, Sequence[int]],
                 strides: Dict[str, Sequence[int]],
                 groups: int = 32,
                 detach_inputs: bool = True,
                 direction: str = 'bottom_up',
                 out_levels: Optional[Dict[str, Sequence[int]]] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 zero_init_last_norm: bool = False,
                 init_cfg: Optional[dict] = dict(
                     type='Xavier', layer='Conv2d', distribution='uniform')
                 ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.zero_init_last_norm = zero_init_last_norm
        if set(in_channels) != set(strides):
            raise ValueError('in_channels and strides name different tasks: '
                             f'{sorted(in_channels)} vs {sorted(strides)}')
        depths = {task: len(c) for task, c in in_channels.items()}
        if len(set(depths.values())) != 1:
            raise ValueError('Reconciliation needs the same number of levels '
                             f'D in every sub-backbone, got {depths}')
        for task in in_channels:
            if len(strides[task]) != depths[task]:
                raise ValueError(f'Task "{task}": {depths[task]} channels but '
                                 f'{len(strides[task])} strides')
        if direction not in self.DIRECTIONS:
            raise ValueError(f'model.neck.direction must be one of '
                             f'{self.DIRECTIONS}, got {direction!r}')
        self.tasks = tuple(in_channels)
        self.num_levels = next(iter(depths.values()))
        self.detach_inputs = detach_inputs
        self.direction = direction
        self.out_levels = self._check_out_levels(out_levels or {})
        # reconcilers[t][k]['j_i'] = gamma_{j->i}^{k->t}
        self.reconcilers = nn.ModuleDict()
        for t in self.tasks:
            into_t = nn.ModuleDict()
            for k in self.tasks:
                if k == t:
                    continue
                layers = nn.ModuleDict()
                for i in self.out_levels[t]:
                    for j in self.source_levels(i):
                        where = str(ReconciliationLink(k, j, t, i))
                        path = self._path(j, i)
                        layers[self._layer_key(j, i)] = ReconciliationLayer(
                            [in_channels[k][m] for m in path],
                            in_channels[t][i],
                            step_strides=[
                                _ratio(*sorted((strides[k][a], strides[k][b])),
                                       where)
                                for a, b in zip(path[:-1], path[1:])
                            ],
                            bridge_stride=_ratio(strides[k][i], strides[t][i],
                                                 where),
                            groups=groups,
                            norm_cfg=norm_cfg,
                            act_cfg=act_cfg,
                            upsample=direction == 'top_down')
                into_t[k] = layers
            self.reconcilers[t] = into_t

    def init_weights(self) -> None:
        """``init_cfg`` (Glorot on the convs), then the last norms' scales
        at 0 with ``zero_init_last_norm``."""
        super().init_weights()
        if self.zero_init_last_norm:
            for layer in self.links().values():
                nn.init.zeros_(layer.gamma_b.norm.weight)

    def source_levels(self, i: int) -> range:
        """The levels j of the other streams that level i reads: j <= i
        bottom-up, j >= i top-down."""
        if self.direction == 'top_down':
            return range(i, self.num_levels)
        return range(i + 1)

    @staticmethod
    def _layer_key(j: int, i: int) -> str:
        """The key of :math:`\\gamma_{j \\to i}` in ``reconcilers[t][k]``."""
        return f'{j}_{i}'

    def links(self) -> Dict[ReconciliationLink, ReconciliationLayer]:
        """Every layer by its link, in the order :meth:`forward` adds them
        (target task, target level, source task, source level)."""
        return {
            ReconciliationLink(k, j, t, i): layers[self._layer_key(j, i)]
            for t in self.tasks for i in self.out_levels[t]
            for k, layers in self.reconcilers[t].items()
            for j in self.source_levels(i)
        }

    @staticmethod
    def _path(j: int, i: int) -> list:
        """The levels a layer from level j to level i passes, j first."""
        return list(range(j, i + 1)) if j <= i else list(range(j, i - 1, -1))

    def _check_out_levels(self, out_levels: Dict[str, Sequence[int]]
                          ) -> Dict[str, Tuple[int, ...]]:
        """``out_levels`` completed with every level of the tasks it leaves
        out, as sorted tuples."""
        unknown = set(out_levels) - set(self.tasks)
        if unknown:
            raise KeyError(f'neck.out_levels names tasks {sorted(unknown)} '
                           f'that are not among the tasks {list(self.tasks)}')
        levels = {}
        for task in self.tasks:
            read = tuple(sorted(set(
                out_levels.get(task, range(self.num_levels)))))
            if not read or not all(
                    0 <= i < self.num_levels for i in read):
                raise ValueError(
                    f'neck.out_levels.{task} must name some of the levels '
                    f'0..{self.num_levels - 1}, got {out_levels[task]!r}')
            levels[task] = read
        return levels

    @property
    def num_layers(self) -> int:
        """Number of reconciliation layers, T(T-1)D(D+1)/2 when every level
        is read (either direction)."""
        return sum(
            len(layers) for into_t in self.reconcilers.values()
            for layers in into_t.values())

    def forward(self, feats: Dict[str, Tuple[Tensor, ...]],
                task: str) -> Tuple[Tensor, ...]:
        """Fuse the other streams into ``task``'s stream.

        Args:
            feats (dict[str, tuple[Tensor]]): ``{k: (E_1^k, ..., E_D^k)}``
                for every task, as returned by :class:`ExpandedBackbone`.
            task (str): The target task t.

        Returns:
            tuple[Tensor]: :math:`(F_1^t, ..., F_D^t)`, each of the shape of
            :math:`\\mathcal{E}_i^t`; a level not in ``out_levels`` is
            :math:`\\mathcal{E}_i^t` itself.
        """
        missing = set(self.tasks) - set(feats)
        if missing:
            raise KeyError(f'Reconciliation into "{task}" needs the features '
                           f'of every task; missing {sorted(missing)}')
        fused = []
        for i, own in enumerate(feats[task]):
            out = own
            if i not in self.out_levels[task]:
                fused.append(out)
                continue
            for k, layers in self.reconcilers[task].items():
                for j in self.source_levels(i):
                    src = feats[k][j]
                    if self.detach_inputs:
                        src = src.detach()
                    out = out + layers[self._layer_key(j, i)](src)
            fused.append(out)
        return tuple(fused)
