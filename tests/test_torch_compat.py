"""xlearner_mm.utils.torch_compat on the installed torch (CI runs the suite
on torch 2.1.2 and torch 2.14.1)."""
import collections
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer

import xlearner_mm  # noqa: F401  (the checkpoint allow-list)
from xlearner_mm.utils.torch_compat import (has_safe_globals,
                                            is_cpu_autocast_enabled,
                                            load_checkpoint, torch_version)


def test_cpu_autocast_state():
    assert not is_cpu_autocast_enabled()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert is_cpu_autocast_enabled()
    assert not is_cpu_autocast_enabled()


def test_safe_globals_exist_from_torch_2_4():
    assert has_safe_globals() == (torch_version() >= (2, 4))


def test_mmengine_checkpoint_loads(tmp_path):
    """What mmengine's CheckpointHook pickles (a HistoryBuffer with numpy
    values in the message hub) loads on every stack."""
    buffer = HistoryBuffer()
    buffer.update(1.5)
    path = tmp_path / 'iter_1.pth'
    torch.save(dict(state_dict=collections.OrderedDict(w=torch.ones(2)),
                    message_hub=dict(log_scalars={'loss': buffer})), path)
    checkpoint = load_checkpoint(str(path))
    assert torch.equal(checkpoint['state_dict']['w'], torch.ones(2))
    assert checkpoint['message_hub']['log_scalars']['loss'].current() == 1.5


class Payload:
    """A class no allow-list names."""


@pytest.mark.skipif(not has_safe_globals(),
                    reason='torch<2.4 has no weights-only allow-list')
def test_other_classes_are_refused(tmp_path):
    path = tmp_path / 'payload.pth'
    torch.save(dict(payload=Payload()), path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(str(path))
