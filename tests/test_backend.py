"""TensorRT flavour selection and the logging adapter, against the real installed TensorRT."""
import importlib.util
import logging

import pytest

import trtnet as tn
from trtnet import backend
from trtnet.engine import BuildError, build_engine


@pytest.fixture(autouse=True)
def keep_choice(monkeypatch):
    monkeypatch.setattr(backend, "_chosen", backend.trt())


def test_select_by_name_and_environment(monkeypatch):
    installed = [f for f in backend.FLAVOURS if importlib.util.find_spec(f)]
    for flavour in installed:
        assert backend.select(flavour).__name__ == flavour
        monkeypatch.setenv(backend.ENV, flavour)
        assert backend.select().__name__ == flavour
    with pytest.raises(backend.BackendError, match="unknown TensorRT backend 'tensorrt_llm'.*tensorrt, tensorrt_rtx"):
        backend.select("tensorrt_llm")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="full TensorRT is installed here")
def test_missing_flavour_is_explained():
    with pytest.raises(backend.BackendError, match=r"no usable TensorRT found \(tensorrt: .*pip install"):
        backend.select("tensorrt")


def test_tensorrt_log_goes_to_python_logging(caplog):
    """A network without outputs: TensorRT's builder refuses it and says why through its logger."""
    g = tn.Graph("bad")
    tn.relu(g.input("data", (3, 4, 4)))
    with caplog.at_level(logging.INFO, logger="trtnet.tensorrt"):
        with pytest.raises(BuildError, match="could not build 'bad': .+") as e:
            build_engine(g, (1, 2, 2), progress=False)
    errors = [r.getMessage() for r in caplog.records if r.name == "trtnet.tensorrt" and r.levelno >= logging.ERROR]
    assert errors and errors[-1] in str(e.value)
