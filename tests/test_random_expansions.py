"""Property test: random expansions build and keep the invariants of paper
Sec. 3.2 (hypothesis draws the configuration).

T tasks in 1..4, D levels in 1..4 (any subset of the four ResNet stages, so
level strides need not double), a random width per task (ResNet
``base_channels``, so the tasks' level widths differ), random conv groups,
image size and direction (X-Learner's bottom-up, X-Learner_t's top-down).
For every draw:

- the neck has T(T-1)D(D+1)/2 reconciliation layers;
- F^t has the shapes of E^t;
- the neck does not write the streams' features in place;
- task t's loss on F^t gives gradient to stream t and the layers into t only
  (the reconciliation inputs are detached);
- with the reconciliation weights zeroed, F^t equals E^t.
"""
import itertools

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlearner_mm.registry import MODELS
from xlearner_mm.utils import register_all_modules

register_all_modules()

TASK_NAMES = ('cls', 'det', 'seg', 'depth')


@st.composite
def expansions(draw):
    num_tasks = draw(st.integers(1, 4))
    tasks = TASK_NAMES[:num_tasks]
    out_indices = tuple(sorted(draw(
        st.sets(st.integers(0, 3), min_size=1, max_size=4))))
    widths = {
        task: draw(st.sampled_from((2, 4, 6, 8, 12)))
        for task in tasks
    }
    groups = draw(st.sampled_from((1, 2, 4)))
    size = draw(st.sampled_from((32, 64)))
    direction = draw(st.sampled_from(('bottom_up', 'top_down')))
    return tasks, out_indices, widths, groups, size, direction


def build(tasks, out_indices, widths, groups, direction):
    backbone = MODELS.build(dict(
        type='ExpandedBackbone',
        tasks=tasks,
        backbone=dict(
            type='mmdet.ResNet', depth=18, num_stages=4,
            out_indices=out_indices, norm_cfg=dict(type='BN'),
            style='pytorch'),
        stream_overrides={
            task: dict(base_channels=width)
            for task, width in widths.items()
        }))
    if len(tasks) == 1:
        return backbone, None
    neck = MODELS.build(dict(
        type='ReconciliationNeck', in_channels=backbone.out_channels,
        strides=backbone.out_strides, groups=groups, direction=direction))
    # PyTorch's default init is enough for these invariants (the Glorot
    # init is tested in test_models.py) and logs nothing per layer.
    return backbone, neck


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(expansions())
def test_random_expansions_keep_shapes_and_detach(config):
    tasks, out_indices, widths, groups, size, direction = config
    torch.manual_seed(0)
    backbone, neck = build(tasks, out_indices, widths, groups, direction)
    T, D = len(tasks), len(out_indices)
    for task in tasks:
        width = widths[task]
        assert backbone.out_channels[task] == tuple(
            width * 2**i for i in out_indices)
    if neck is None:  # one task: nothing to reconcile
        return
    assert neck.num_layers == T * (T - 1) * D * (D + 1) // 2
    assert sum(1 for t, k in itertools.permutations(tasks, 2)
               for _ in neck.reconcilers[t][k]) == neck.num_layers

    x = torch.randn(2, 3, size, size)
    target = tasks[-1]
    backbone.zero_grad(set_to_none=True)
    neck.zero_grad(set_to_none=True)
    feats = backbone(x)
    versions = {t: [e._version for e in feats[t]] for t in tasks}
    fused = neck(feats, target)
    # The layers read the other streams' features without writing them (a
    # stage output is already activated, so an in-place ReLU would change
    # no value, only the version that autograd checks).
    assert {t: [e._version for e in feats[t]] for t in tasks} == versions
    assert [f.shape for f in fused] == [e.shape for e in feats[target]]
    sum(f.square().mean() for f in fused).backward()
    for task, stream in backbone.streams.items():
        grads = [p.grad for p in stream.parameters()]
        if task == target:
            assert any(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None for g in grads), task
    for t in tasks:
        for name, p in neck.reconcilers[t].named_parameters():
            if t == target:
                assert p.grad is not None, (t, name)
            else:
                assert p.grad is None, (t, name)

    with torch.no_grad():
        for p in neck.parameters():
            if p.dim() == 4:  # conv weights; BN then maps 0 to its bias 0
                p.zero_()
        for task in tasks:
            for f, e in zip(neck(feats, task), feats[task]):
                torch.testing.assert_close(f, e)
