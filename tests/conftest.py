import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def overflow_model(tmp_path_factory):
    """(path, module): tests/data/overflow_model.py copied with its seeded weights beside it (overflow.pth);
    its `big` layer's outputs leave float16's range, a LayerNorm brings them back."""
    import shutil
    import torch
    from trtnet import zoo
    d = tmp_path_factory.mktemp("overflow")
    path = str(d / "overflow.py")
    shutil.copy(os.path.join(ROOT, "tests", "data", "overflow_model.py"), path)
    torch.manual_seed(0)
    module = zoo.get(path).torch_module().eval()
    torch.save(module.state_dict(), str(d / "overflow.pth"))
    return path, module
