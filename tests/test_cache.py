"""Timing cache, engine cache keys read back from the TensorRT network, the engine cache, refit flags and refit's
checks."""
import os
import time

import numpy as np
import pytest

import trtnet as tn
from trtnet import backend, cache, files
from trtnet.engine import build_engine
from trtnet.events import Events, Listener
from trtnet.runtime import ExecutionError, execution_unavailable, refit
from trtnet.tensors import TensorSpec

REASON = execution_unavailable(0)
# Measured with TensorRT-RTX 1.7.1 on a CPU-only machine: any refittable weights (REFIT, REFIT_IDENTICAL,
# REFIT_INDIVIDUAL with marked weights, STRIP_PLAN) make the build fail in Myelin's JIT ("CUDA driver version is
# insufficient"); plain builds work. strict: the test reports it once such builds start to work.
REFIT_BUILD_NEEDS_CUDA = pytest.mark.xfail(
    backend.is_rtx() and REASON is not None, strict=True,
    reason="TensorRT-RTX builds refittable or weight-stripped plans only with a CUDA driver")


def conv_net(layers=3, channels=16, seed=0, stride=1, name="conv"):
    """A chain of 3x3 convolutions with a dynamic batch: (builder, network, weight arrays to keep alive)."""
    t = backend.trt()
    builder = t.Builder(backend.logger())
    network = builder.create_network(0)
    x = network.add_input("x", t.float32, (-1, channels, 16, 16))
    rng, keep = np.random.default_rng(seed), []
    for i in range(layers):
        keep.append(rng.standard_normal((channels, channels, 3, 3), dtype=np.float32) * 0.05)
        layer = network.add_convolution_nd(x, channels, (3, 3), t.Weights(keep[-1]))
        layer.padding_nd, layer.stride_nd, layer.name = (1, 1), (stride, stride), f"{name}{i}"
        x = layer.get_output(0)
    network.mark_output(x)
    return builder, network, keep


def build(builder, network, **flags):
    t = backend.trt()
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    c = network.get_input(0).shape[1]
    profile.set_shape("x", (1, c, 16, 16), (2, c, 16, 16), (4, c, 16, 16))
    config.add_optimization_profile(profile)
    cache.configure(config, **flags)
    return config, builder.build_serialized_network(network, config), t


def test_engine_key_is_stable_and_sees_every_change():
    key = cache.engine_key(conv_net()[1], {"batch": (1, 2, 4)})
    assert key == cache.engine_key(conv_net()[1], {"batch": (1, 2, 4)})
    b, net, keep = conv_net()
    keep[1][0, 0, 0, 0] += 1e-3   # TensorRT reads the caller's array: one weight value changes
    changed = {
        "weight": cache.engine_key(net, {"batch": (1, 2, 4)}),
        "attribute": cache.engine_key(conv_net(stride=2)[1], {"batch": (1, 2, 4)}),
        "layer name": cache.engine_key(conv_net(name="c")[1], {"batch": (1, 2, 4)}),
        "depth": cache.engine_key(conv_net(layers=4)[1], {"batch": (1, 2, 4)}),
        "settings": cache.engine_key(conv_net()[1], {"batch": (1, 2, 8)}),
        "version": cache.engine_key(conv_net()[1], {"batch": (1, 2, 4)}, "tensorrt 10.99"),
    }
    assert all(k != key for k in changed.values()), changed
    assert len(set(changed.values())) == len(changed)


def test_engine_key_of_resnet50_sized_network_is_quick():
    """53 convolutions of 256x256x3x3: 31 M weights (125 MB), more than ResNet-50's 25.6 M."""
    _, net, keep = conv_net(layers=53, channels=256)
    start = time.perf_counter()
    cache.engine_key(net, {})
    seconds = time.perf_counter() - start
    assert sum(a.size for a in keep) > 25.6e6 and seconds < 0.5, seconds


def test_engine_cache_round_trip(tmp_path):
    c = cache.EngineCache(str(tmp_path / "engines"))
    key = cache.engine_key(conv_net()[1], {})
    assert c.get(key) is None
    path = c.put(key, b"plan bytes")
    assert c.get(key) == b"plan bytes" and os.path.dirname(path) == str(tmp_path / "engines")
    assert [p for p in os.listdir(tmp_path / "engines")] == [key + ".engine"]   # no temporary left behind
    with pytest.raises(ValueError, match="hex digest"):
        c.get("../escape")


class Recorder(Listener):
    def __init__(self):
        self.log = []

    def started(self, phase):
        self.log.append(("started", phase))

    def progress(self, phase, done, total):
        self.log.append(("progress", phase, done, total))

    def finished(self, phase, seconds, error):
        self.log.append(("finished", phase))


def conv_graph():
    rng = np.random.default_rng(0)
    w = tn.WeightMap({"c.weight": rng.standard_normal((4, 3, 3, 3), dtype=np.float32),
                      "c.bias": rng.standard_normal(4, dtype=np.float32)})
    g = tn.Graph("conv")
    g.output(tn.relu(tn.conv(g.input("data", (3, 8, 8)), w["c"], padding=1)), "y")
    return g


def test_build_announces_its_phases_and_a_cache_hit_skips_the_build(tmp_path):
    engines = cache.EngineCache(str(tmp_path))
    first, second = Recorder(), Recorder()
    plan, info = build_engine(conv_graph(), (1, 2, 4), engine_cache=engines, events=Events(first))
    starts = [e for e in first.log if e[0] != "progress"]
    assert starts == [("started", "emit"), ("finished", "emit"), ("started", "TensorRT build"),
                      ("finished", "TensorRT build")], first.log
    steps = [e for e in first.log if e[0] == "progress"]
    assert all(e[1] == "TensorRT build" and 0 < e[2] <= e[3] for e in steps), steps
    assert steps or not hasattr(backend.trt(), "IProgressMonitor"), "TensorRT's build steps reach the listener"
    again, cached = build_engine(conv_graph(), (1, 2, 4), engine_cache=engines, events=Events(second))
    assert second.log == [("started", "emit"), ("finished", "emit")] and cached.cached and again == plan
    io = ([TensorSpec("data", "float32", (-1, 3, 8, 8), [((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))])],
          [TensorSpec("y", "float32", (-1, 4, 8, 8))])
    assert info.io == cached.io == io   # the network's IO, read back from TensorRT, travels with the plan


def test_failed_write_keeps_the_old_file(tmp_path):
    """A writer callable that fails midway (as a full disk would) leaves the old plan and no temporary file."""
    path = tmp_path / "x.engine"
    path.write_bytes(b"old plan")

    def half(f):
        f.write(b"new pl")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.write_atomic(str(path), half)
    assert os.listdir(tmp_path) == ["x.engine"] and path.read_bytes() == b"old plan" and not files.PENDING
    files.write_atomic(str(path), lambda f: f.write(b"new plan"))
    assert os.listdir(tmp_path) == ["x.engine"] and path.read_bytes() == b"new plan"


def test_timing_cache_is_saved_and_reused(tmp_path):
    path = str(tmp_path / "timing.cache")
    for _ in range(2):   # the second build starts from the file the first one saved
        b, net, keep = conv_net()
        config = b.create_builder_config()
        profile = b.create_optimization_profile()
        profile.set_shape("x", (1, 16, 16, 16), (2, 16, 16, 16), (4, 16, 16, 16))
        config.add_optimization_profile(profile)
        save = cache.timing_cache(config, path)
        assert b.build_serialized_network(net, config) is not None
        assert save() == path and os.path.getsize(path) > 0
    assert os.listdir(tmp_path) == ["timing.cache"]


def test_configure_sets_the_refit_flags():
    t = backend.trt()
    b = t.Builder(backend.logger())
    flags = lambda **kw: {f for f in ("REFIT", "REFIT_IDENTICAL", "STRIP_PLAN")  # noqa: E731
                          if cache.configure(b.create_builder_config(), **kw).get_flag(getattr(t.BuilderFlag, f))}
    assert flags() == set()
    assert flags(refittable=True) == {"REFIT"}
    assert flags(strip_weights=True) == {"STRIP_PLAN", "REFIT_IDENTICAL"}
    assert flags(refittable=True, strip_weights=True) == {"REFIT", "STRIP_PLAN"}


@REFIT_BUILD_NEEDS_CUDA
def test_refittable_plan_builds():
    _, plan, _ = build(*conv_net()[:2], refittable=True)
    assert plan is not None and plan.nbytes > 0


@REFIT_BUILD_NEEDS_CUDA
def test_weight_stripped_plan_is_much_smaller():
    b, net, keep = conv_net(layers=4, channels=128)   # 2.4 MB of weights
    _, full, _ = build(b, net)
    _, stripped, _ = build(b, net, refittable=True, strip_weights=True)
    assert stripped is not None and stripped.nbytes < full.nbytes / 4, (stripped and stripped.nbytes, full.nbytes)


def test_refit_checks_weights_then_needs_a_gpu():
    with pytest.raises(ValueError, match="unknown role 'kernal'"):
        refit(b"plan", {("conv0", "kernal"): np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="must be a weights name"):
        refit(b"plan", {0: np.zeros(3, np.float32)})
    if REASON is None:
        pytest.skip("an engine can execute here: tests/test_runtime.py refits on the GPU")
    with pytest.raises(ExecutionError, match=f"cannot refit here: {REASON}"):
        refit(b"plan", {("conv0", "kernel"): np.zeros(3, np.float32)})
