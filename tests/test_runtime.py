"""trtnet.runtime and `python -m trtnet.run`.

CPU tests check what Python decides around TensorRT's calls (validation, buffer reuse, profiles, pool
scheduling) with TensorRT's runtime objects replaced by doubles made from its bindings (tests/gpu_standin.py),
whose engine computes y = 2x with torch on the CPU: they never count as executing an engine. GPU tests run real
engines where one can execute and skip elsewhere, saying why."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from gpu_standin import CpuCuda, StandInTrt
from trtnet import backend
from trtnet.run import latency_summary, make_inputs, output_summary, parse_inputs, parse_shapes
from trtnet.runtime import (Engine, EnginePool, ExecutionError, RuntimeInputError, execution_unavailable, refit,
                            run_engine)
from trtnet.tensors import TensorSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REASON = execution_unavailable(0)
needs_engine = pytest.mark.skipif(REASON is not None, reason=f"no TensorRT engine can execute here: {REASON}")


PROFILES = [{"x": ((1, 3, 4), (4, 3, 8), (8, 3, 16))}, {"x": ((8, 3, 4), (16, 3, 8), (32, 3, 16))}]


def fake(profiles=2, delay=0.0, dynamic=True):
    """A TensorRT stand-in (tests/gpu_standin.py) whose engine computes y = 2x, optionally after a random delay
    (to observe pool scheduling), on the CPU."""
    shape = (-1, 3, -1) if dynamic else (2, 3, 4)
    profs = [{"x": p["x"]} for p in PROFILES[:profiles]] if dynamic else [{"x": ((2, 3, 4),) * 3}]

    def fn(x):
        if delay and x.device.type != "meta":
            time.sleep(delay * np.random.default_rng(int(x.flatten()[0])).random())
        return {"y": 2 * x}

    return StandInTrt({"x": ("FLOAT", shape)}, {"y": ("FLOAT", shape)}, profs, fn)


def new_engine(trt=None, device=0):
    return Engine(b"", device, trt=trt or fake(), cuda=CpuCuda(device))


def log_of(trt, event):
    return [ev for ev in trt.log if ev[0] == event]


def test_io_comes_from_the_network_and_profiles():
    e = new_engine()
    (x,), (y,) = e.inputs, e.outputs
    assert (x.name, x.dtype, x.shape, y.name, y.dtype, y.shape) == ("x", "float32", (-1, 3, -1), "y", "float32",
                                                                    (-1, 3, -1))
    assert e.num_profiles == 2 and x.profiles[1] == ((8, 3, 4), (16, 3, 8), (32, 3, 16))


@pytest.mark.parametrize("arrays,message", [
    ({"x": np.zeros((2, 3, 8), np.float32), "z": np.zeros(1)}, "unknown input 'z': the engine's inputs are x"),
    ({}, r"missing input 'x' \(float32 \?x3x\?\)"),
    ({"x": np.zeros((2, 3), np.float32)}, r"input 'x': shape 2x3 has rank 2, expected rank 3 \(\?x3x\?\)"),
    ({"x": np.zeros((9, 3, 8), np.float32)}, r"input 'x': shape 9x3x8 has dim 0 = 9, expected 1..8 \(profile 0"),
    ({"x": np.zeros((2, 4, 8), np.float32)}, "input 'x': shape 2x4x8 has dim 1 = 4, expected 3 "),
    ({"x": np.zeros((2, 3, 17), np.float32)}, "has dim 2 = 17, expected 4..16"),
    ({"x": np.zeros((2, 3, 8), np.float64)}, "input 'x': dtype float64, expected float32"),
    ({"x": torch.zeros((2, 3, 8), dtype=torch.float16)}, "input 'x': dtype float16, expected float32"),
    ({"x": [[0.0]]}, "input 'x': got list, expected a numpy array or a torch tensor"),
])
def test_invalid_inputs_fail_in_one_line_before_tensorrt(arrays, message):
    e = new_engine()
    with pytest.raises(RuntimeInputError, match=message) as err:
        e(**arrays)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    trt = e.executor.t
    assert log_of(trt, "shape") == log_of(trt, "execute") == []   # nothing reached the context


def test_profile_chooses_the_allowed_range():
    e = new_engine()
    x = np.ones((16, 3, 8), np.float32)
    with pytest.raises(RuntimeInputError, match="expected 1..8 \\(profile 0"):
        e.context(profile=0)(x=x)
    np.testing.assert_array_equal(e.context(profile=1)(x=x)["y"], 2 * x)
    with pytest.raises(ValueError, match="profile 2 does not exist"):
        e.context(profile=2)


def test_numpy_in_numpy_out_and_buffers_reused_per_shape():
    e = new_engine()
    ctx = e.context()
    x = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)
    out = ctx(x=x)
    assert isinstance(out["y"], np.ndarray)
    np.testing.assert_array_equal(out["y"], 2 * x)
    assert ctx(x=x + 1)["y"][0, 0, 0] == 2 and ctx.allocations == 1
    ctx(x=np.ones((4, 3, 8), np.float32))
    ctx(x=x)
    assert ctx.allocations == 2
    assert [ev[3] for ev in log_of(e.executor.t, "shape")] == [(2, 3, 8), (4, 3, 8), (2, 3, 8)]


def test_torch_in_torch_out_without_copies():
    e = new_engine()
    ctx = e.context()
    x = torch.ones((2, 3, 8))
    first = ctx(x=x)["y"]
    second = ctx(x=3 * x)["y"]
    assert isinstance(first, torch.Tensor) and first.data_ptr() == second.data_ptr()   # the context's buffer
    assert float(second[0, 0, 0]) == 6.0


def test_pool_spreads_batches_and_keeps_submission_order():
    trt = fake(delay=0.01)
    pool = EnginePool(b"", devices=[0, 1], contexts_per_device=2, trt=trt, cuda=CpuCuda)
    assert pool.note == ""
    contexts = [(c.engine.device, c.profile) for c in pool.contexts]
    assert sorted(contexts) == [(0, 0), (0, 1), (1, 0), (1, 1)]    # a distinct profile per context on each GPU
    batches = [{"x": np.full((8, 3, 4), i, np.float32)} for i in range(40)]   # batch 8 fits both profiles
    results = pool.run(batches)
    assert [float(r["y"][0, 0, 0]) for r in results] == [2.0 * i for i in range(40)]
    runs = log_of(trt, "execute")
    assert len(runs) == 40 and {(ev[1], ev[2]) for ev in runs} == set(contexts)
    assert len({ev[4] for ev in runs}) == 4
    s = pool.stats
    assert (s.batches, s.samples) == (40, 320) and s.seconds > 0 and s.samples_per_s == pytest.approx(320 / s.seconds)


def test_pool_uses_fewer_contexts_than_profiles_allow_and_says_so():
    pool = EnginePool(b"", devices=[0], contexts_per_device=3, trt=fake(profiles=1), cuda=CpuCuda)
    assert len(pool.contexts) == 1 and "1 context(s) per device instead of 3" in pool.note
    static = EnginePool(b"", devices=[0], contexts_per_device=3, trt=fake(profiles=1, dynamic=False),
                        cuda=CpuCuda)
    assert [c.profile for c in static.contexts] == [0, 0, 0] and static.note == ""


def test_pool_reports_the_first_failing_batch():
    pool = EnginePool(b"", devices=[0], contexts_per_device=2, trt=fake(), cuda=CpuCuda)
    batches = [{"x": np.ones((2, 3, 4), np.float32)}, {"x": np.ones((2, 3, 4), np.int32)}]
    with pytest.raises(RuntimeInputError, match="dtype int32"):
        pool.run(batches)
    assert pool.stats.batches == 0


def test_real_engine_explains_why_it_cannot_load_here():
    if REASON is None:
        pytest.skip("an engine can execute here")
    with pytest.raises(ExecutionError, match=f"cannot execute engines here: {REASON}"):
        Engine(b"not a plan")


def test_run_command_helpers():
    assert parse_shapes(["images:1x3x224x224", "a:b:2X3"]) == {"images": (1, 3, 224, 224), "a:b": (2, 3)}
    assert parse_inputs(["images:/data/x.npy", "mask:random"]) == {"images": "/data/x.npy", "mask": "random"}
    for bad in (["images"], ["images:1xa"]):
        with pytest.raises(ValueError, match="--shapes takes"):
            parse_shapes(bad)
    specs = new_engine().inputs + [TensorSpec("ids", "int32", (-1, 5), [((1, 5), (3, 5), (4, 5))])]
    arrays = make_inputs(specs, {}, {"x": (2, 3, 5)})
    assert arrays["x"].shape == (2, 3, 5) and arrays["x"].dtype == np.float32
    assert arrays["ids"].shape == (3, 5) and arrays["ids"].dtype == np.int32    # profile's opt shape
    with pytest.raises(ValueError, match="unknown tensor"):
        make_inputs(specs, {"nope": "random"}, {})
    assert "p50 2.000 ms, p90 2.000 ms, p99 2.000 ms" in latency_summary([0.002] * 10)
    assert output_summary({"y": np.array([[1, 3]], np.float32)}) == [
        "output y: shape 1x2 float32 min 1 max 3 mean 2"]


def test_run_command_fails_in_one_line_where_no_engine_can_execute(tmp_path, capsys):
    if REASON is None:
        pytest.skip("an engine can execute here")
    from trtnet.run.__main__ import main
    plan = tmp_path / "x.engine"
    plan.write_bytes(b"plan")
    assert main([str(plan)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"error: cannot run {plan} here: {REASON}\n"
    assert main([str(tmp_path / "missing.engine")]) == 1
    assert capsys.readouterr().err == f"error: no engine file {tmp_path / 'missing.engine'}\n"


def test_run_help_imports_neither_torch_nor_tensorrt_itself():
    """--help adds no heavy import to what `import trtnet` already costs (see docs/deploy.md)."""
    code = ("import sys, trtnet; before = set(sys.modules); from trtnet.run.__main__ import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
            "('torch', 'tensorrt', 'tensorrt_rtx', 'pycuda', 'cuda')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "--iterations" in r.stdout and r.stdout.strip().endswith("[]"), r.stdout + r.stderr


# GPU: real engines


def lenet_graph():
    """LeNet with seeded untrained weights (zoo.export_state trains it, which takes a minute)."""
    import trtnet as tn
    import zoo
    torch.manual_seed(0)
    state = {k: v.detach().numpy() for k, v in zoo.get("lenet").torch_module().state_dict().items()}
    return zoo.get("lenet").graph(tn.WeightMap(state))


def lenet_plan(batch=(1, 4, 8)):
    from trtnet.engine import build_engine
    graph = lenet_graph()
    return build_engine(graph, batch, progress=False)[0], graph


@needs_engine
@pytest.mark.gpu
def test_engine_matches_run_engine_with_numpy_and_torch():
    plan, _ = lenet_plan()
    e = Engine(plan, 0)
    assert e.num_profiles == 1 and e.inputs[0].profiles[0] == ((1, 1, 32, 32), (4, 1, 32, 32), (8, 1, 32, 32))
    x = np.random.default_rng(0).standard_normal((4, 1, 32, 32), dtype=np.float32)
    want = run_engine(plan, {"data": x}, 0)["prob"]
    np.testing.assert_allclose(e(data=x)["prob"], want, rtol=1e-6, atol=1e-7)
    got = e(data=torch.from_numpy(x).cuda())["prob"]
    assert got.is_cuda
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-6, atol=1e-7)
    with pytest.raises(RuntimeInputError, match="dim 0 = 9, expected 1..8"):
        e(data=np.zeros((9, 1, 32, 32), np.float32))


@needs_engine
@pytest.mark.gpu
def test_contexts_on_two_streams():
    plan, _ = lenet_plan([{"N": (1, 4, 8)}] * 3)
    e = Engine(plan, 0)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((b, 1, 32, 32), dtype=np.float32) for b in (3, 5)]
    want = [e(data=x)["prob"] for x in xs]      # the default context: profile 0
    contexts = [e.context(torch.cuda.Stream(0)) for _ in range(2)]   # profiles 1 and 2, one per thread below
    assert [c.profile for c in contexts] == [1, 2]
    out = [None, None]
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, contexts[i](data=xs[i])["prob"]))
               for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for got, w in zip(out, want):
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-7)


@needs_engine
@pytest.mark.gpu
def test_engine_pool_on_every_gpu(tmp_path):
    plan, _ = lenet_plan()
    path = tmp_path / "lenet.engine"
    path.write_bytes(plan)
    pool = EnginePool(str(path), devices=list(range(torch.cuda.device_count())), contexts_per_device=2)
    assert "1 context(s) per device" in pool.note   # one profile, dynamic batch
    xs = [np.random.default_rng(i).standard_normal((8, 1, 32, 32), dtype=np.float32) for i in range(12)]
    results = pool.run([{"data": x} for x in xs])
    single = Engine(plan, 0)
    for x, r in zip(xs, results):
        np.testing.assert_allclose(r["prob"], single(data=x)["prob"], rtol=1e-6, atol=1e-7)
    assert pool.stats.samples == 96 and pool.stats.samples_per_s > 0


@needs_engine
@pytest.mark.gpu
def test_refit_changes_the_outputs():
    from trtnet import cache
    from trtnet.engine import create_network
    builder, network, emission = create_network(lenet_graph())
    config = cache.configure(builder.create_builder_config(), refittable=True)
    profile = builder.create_optimization_profile()
    profile.set_shape("data", (1, 1, 32, 32), (2, 1, 32, 32), (2, 1, 32, 32))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    e = Engine(bytes(plan), 0)
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32), dtype=np.float32)
    before = e(data=x)["prob"]
    layer = next(network.get_layer(i) for i in range(network.num_layers)
                 if network.get_layer(i).type == backend.trt().LayerType.CONVOLUTION)
    layer.__class__ = backend.trt().IConvolutionLayer
    refit(e, {(layer.name, "kernel"): np.zeros_like(layer.kernel)})
    after = e(data=x)["prob"]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after[0], after[1], rtol=1e-5)   # the first conv now ignores its input


def test_run_command_makes_and_summarises_narrow_types():
    """bfloat16, fp8, int4 and fp4 inputs as ml_dtypes arrays (numpy has none of them), summarised as numbers."""
    specs = [TensorSpec(n, n, (2, 3), [((2, 3),) * 3]) for n in ("bfloat16", "float8_e4m3fn", "int4", "fp4")]
    arrays = make_inputs(specs, {}, {})
    assert [a.dtype.name for a in arrays.values()] == ["bfloat16", "float8_e4m3fn", "int4", "float4_e2m1fn"]
    lines = output_summary(arrays)
    for line, a in zip(lines, arrays.values()):
        v = a.astype(np.float64)
        assert line.endswith(f"min {v.min():.6g} max {v.max():.6g} mean {v.mean():.6g}"), line


def test_run_command_takes_a_runtime_cache_path():
    from trtnet.run.__main__ import parser
    assert parser().parse_args(["m.engine"]).runtime_cache is None          # default: ENGINE.runtime-cache
    assert parser().parse_args(["m.engine", "--runtime-cache", "none"]).runtime_cache == "none"
