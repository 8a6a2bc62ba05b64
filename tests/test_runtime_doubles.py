"""trtnet.runtime's TensorRT and CUDA calls against doubles made from TensorRT's bindings (tests/gpu_standin.py).

On the CPU, `CpuCuda` stands in for CUDA; where CUDA is present, the `cuda` tests run the real `_Cuda` (streams,
device selection, pinned copies, alignment, synchronisation) with the same recording TensorRT stand-in. No test
here executes a TensorRT engine."""

import numpy as np
import pytest
import torch

from gpu_standin import CpuCuda, StandInTrt, spec_double
from trtnet import backend
from trtnet.runtime import (Engine, EnginePool, ExecutionError, RuntimeInputError, network_weights, refit,
                            refit_from_network, run_engine, unsupported_gpu, _Cuda)

PROFILES = [{"x": ((1, 3), (4, 3), (8, 3))}, {"x": ((8, 3), (16, 3), (32, 3))}]


def doubling(**kw):
    return StandInTrt({"x": ("FLOAT", (-1, 3))}, {"y": ("FLOAT", (-1, 3))}, kw.pop("profiles", PROFILES),
                      lambda x: {"y": 2 * x}, **kw)


def engine(trt=None, device=0, cuda=None, **kw):
    trt = trt or doubling()
    return Engine(b"plan", device, trt=trt, cuda=cuda or CpuCuda(device), **kw), trt


def executions(trt):
    return [ev for ev in trt.log if ev[0] == "execute"]


def test_doubles_reject_wrong_names_and_argument_counts():
    e, ctx = spec_double("ICudaEngine"), spec_double("IExecutionContext")
    with pytest.raises(AttributeError):
        e.get_binding_name(0)            # TensorRT 8's name, gone in 10
    with pytest.raises(TypeError):
        e.get_tensor_profile_shape("x")  # needs the profile index
    with pytest.raises(TypeError):
        ctx.set_input_shape("x")         # every overload needs a shape
    with pytest.raises(TypeError):
        spec_double("Runtime", instance=False)()   # Runtime(logger)


def test_the_engines_gpu_is_current_in_every_call_and_in_refit():
    e, trt = engine(device=1)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(e(x=x)["y"], 2 * x)        # the stand-in asserts GPU 1 is current
    assert CpuCuda.current_index() is None                    # and the caller's device is restored
    assert {ev[1] for ev in trt.log} == {1}
    refit(e, {("conv", "kernel"): np.zeros(3, np.float32)})  # on the engine's GPU 1, not GPU 0
    assert [ev[:2] for ev in trt.log if ev[0] == "refit"] == [("refit", 1)]


def test_pool_workers_run_on_their_engines_gpu():
    trt = doubling()
    pool = EnginePool(b"plan", devices=[0, 1], contexts_per_device=2, runtime_cache=False, trt=trt, cuda=CpuCuda)
    results = pool.run([{"x": np.full((4 if i % 2 else 16, 3), i, np.float32)} for i in range(12)])
    assert [float(r["y"][0, 0]) for r in results] == [2.0 * i for i in range(12)]
    assert len(executions(trt)) == 12    # each with its engine's GPU current: the stand-in asserts it


def test_a_refused_shape_is_not_remembered():
    trt = StandInTrt({"a": ("FLOAT", (-1, 3)), "b": ("FLOAT", (-1, 3))}, {"y": ("FLOAT", (-1, 3))},
                     [{"a": ((1, 3), (2, 3), (8, 3)), "b": ((1, 3), (2, 3), (8, 3))}], lambda a, b: {"y": a + b})
    e, _ = engine(trt)
    small = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}
    e(**small)
    trt.rejected.add((4, 3))
    with pytest.raises(ExecutionError, match="rejected shape 4x3"):
        e(a=np.ones((3, 3), np.float32), b=np.ones((4, 3), np.float32))   # a's shape taken, b's refused
    np.testing.assert_array_equal(e(**small)["y"], np.full((2, 3), 2))
    assert executions(trt)[-1][3] == {"a": (2, 3), "b": (2, 3)}   # TensorRT ran with the shapes of the buffers


def test_data_dependent_outputs_fail_the_same_way_every_time():
    trt = doubling()
    trt.data_dependent = True
    e, _ = engine(trt)
    for _ in range(2):
        with pytest.raises(ExecutionError, match="data-dependent shape"):
            e(x=np.ones((2, 3), np.float32))


def test_inconsistent_inputs_are_named():
    trt = StandInTrt({"a": ("FLOAT", (-1, 3)), "b": ("FLOAT", (-1, 3))}, {"y": ("FLOAT", (-1, 3))},
                     [{"a": ((1, 3), (2, 3), (8, 3)), "b": ((1, 3), (2, 3), (8, 3))}], lambda a, b: {"y": a + b})
    trt.consistent = lambda shapes: len({s[0] for s in shapes.values()}) == 1
    e, _ = engine(trt)
    with pytest.raises(ExecutionError, match=r"inconsistent \(a 2x3, b 3x3\)"):
        e(a=np.ones((2, 3), np.float32), b=np.ones((3, 3), np.float32))
    assert executions(trt) == []


def test_numpy_and_torch_mixed():
    trt = StandInTrt({"a": ("FLOAT", (-1, 3)), "b": ("FLOAT", (-1, 3))}, {"y": ("FLOAT", (-1, 3))},
                     [{"a": ((1, 3), (2, 3), (8, 3)), "b": ((1, 3), (2, 3), (8, 3))}], lambda a, b: {"y": a - b})
    e, _ = engine(trt)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = e(a=a, b=torch.ones(2, 3))["y"]
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, a - 1)


@pytest.mark.parametrize("trt_type,np_type", [("BF16", "bfloat16"), ("FP8", "float8_e4m3fn"), ("INT4", "int4"),
                                              ("FP4", "float4_e2m1fn")])
def test_narrow_types_go_in_and_out_as_ml_dtypes(trt_type, np_type):
    np_type = getattr(pytest.importorskip("ml_dtypes", reason="numpy has no bfloat16, fp8, int4 or fp4"), np_type)
    seen = []

    def identity(x):   # keeps what reached TensorRT (not the shape-only meta calls)
        if x.device.type != "meta":
            seen.append(x.clone())
        return {"y": x}

    trt = StandInTrt({"x": (trt_type, (-1, 3))}, {"y": (trt_type, (-1, 3))}, [{"x": ((1, 3), (3, 3), (8, 3))}],
                     identity)
    e, _ = engine(trt)
    x = np.array([[1, -2, 3], [-4, 5, 6], [0.5 if trt_type != "INT4" else 7, 2, -1]]).astype(np_type)
    y = e(x=x)["y"]
    assert y.dtype == np.dtype(np_type) and y.shape == (3, 3)
    np.testing.assert_array_equal(y.astype(np.float32), x.astype(np.float32))
    if trt_type == "INT4":   # TensorRT's packing: two to a byte, the first element in the low nibble
        assert seen[-1][:2].tolist() == [0xE1, 0xC3]
    if trt_type == "BF16":   # the same bits torch's bfloat16 gives
        assert seen[-1].float().tolist() == torch.tensor(x.astype(np.float32)).bfloat16().float().tolist()


def test_torch_bfloat16_stays_torch():
    trt = StandInTrt({"x": ("BF16", (-1, 3))}, {"y": ("BF16", (-1, 3))}, [{"x": ((1, 3), (3, 3), (8, 3))}],
                     lambda x: {"y": x * 2})
    e, _ = engine(trt)
    y = e(x=torch.ones(2, 3, dtype=torch.bfloat16))["y"]
    assert y.dtype == torch.bfloat16 and y.float().tolist() == [[2.0] * 3] * 2


def test_engine_validity_from_tensorrt_and_the_support_matrix():
    trt = doubling()
    d = trt.EngineInvalidityDiagnostics
    trt.validity = (trt.EngineValidity.INVALID, int(d.UNSUPPORTED_CC) | int(d.OLD_CUDA_DRIVER))
    with pytest.raises(ExecutionError, match="cannot run on this GPU: unsupported cc, old cuda driver"):
        engine(trt)
    assert "compute capability 9.0" in unsupported_gpu(True, (9, 0), "H100")
    assert "compute capability 7.0" in unsupported_gpu(True, (7, 0), "V100")
    assert unsupported_gpu(True, (8, 9), "L4") is None and unsupported_gpu(True, (12, 0), "RTX 5090") is None
    assert unsupported_gpu(False, (9, 0), "H100") is None and "7.5 or newer" in unsupported_gpu(False, (7, 0), "V100")


def test_each_context_of_a_dynamic_engine_gets_its_own_profile():
    e, trt = engine()
    a, b = e.context(), e.context()
    assert (a.profile, b.profile) == (0, 1)
    with pytest.raises(ValueError, match="all 2 optimization profile"):
        e.context()
    del a
    with pytest.raises(ValueError, match="profile 1 is in use"):
        e.context(profile=1)
    assert e.context(profile=0).profile == 0
    profiles = [ev[-1] for ev in trt.log if ev[0] == "context"]
    assert len(profiles) == 3


def test_static_engines_share_profile_zero():
    trt = StandInTrt({"x": ("FLOAT", (2, 3))}, {"y": ("FLOAT", (2, 3))}, [{"x": ((2, 3),) * 3}], lambda x: {"y": x})
    e, _ = engine(trt)
    assert [e.context().profile for _ in range(3)] == [0, 0, 0]


def test_pool_sends_each_batch_to_a_context_whose_profile_fits():
    trt = doubling()
    pool = EnginePool(b"plan", devices=[0], contexts_per_device=2, runtime_cache=False, trt=trt, cuda=CpuCuda)
    sizes = [2, 16, 8, 30, 1, 12] * 3
    results = pool.run([{"x": np.full((n, 3), n, np.float32)} for n in sizes])
    assert [r["y"].shape[0] for r in results] == sizes
    for _, _, profile, shapes, *_ in executions(trt):
        lo, _, hi = PROFILES[profile]["x"]
        assert lo[0] <= shapes["x"][0] <= hi[0]
    with pytest.raises(RuntimeInputError, match="batch 1: input 'x': shape 40x3 .*nor does any other"):
        pool.run([{"x": np.ones((2, 3), np.float32)}, {"x": np.ones((40, 3), np.float32)}])


def test_sliced_torch_inputs_are_realigned():
    e, trt = engine()
    base = torch.arange(30, dtype=torch.float32).reshape(10, 3)
    x = base[1:4]                        # 12 bytes past a 256-byte boundary
    assert x.data_ptr() % 256
    np.testing.assert_array_equal(e(x=x)["y"].numpy(), 2 * x.numpy())   # the stand-in asserts alignment


def test_zero_size_tensors_get_a_valid_address():
    e, trt = engine(doubling(profiles=[{"x": ((0, 3), (4, 3), (8, 3))}]))
    assert e(x=np.ones((0, 3), np.float32))["y"].shape == (0, 3)      # the stand-in asserts a non-null address


def test_errors_from_an_earlier_call_do_not_leak():
    trt = doubling()
    e, _ = engine(trt)
    backend.logger(trt).errors.append("an old failure")
    trt.fail = True
    with pytest.raises(ExecutionError) as err:
        e(x=np.ones((2, 3), np.float32))
    assert str(err.value) == "TensorRT failed to execute the engine: no reason logged"


def test_run_engine_deserializes_once_per_plan():
    trt, cuda = doubling(), CpuCuda(0)
    x = np.ones((3, 3), np.float32)
    for _ in range(3):
        np.testing.assert_array_equal(run_engine(b"plan", {"x": x}, 0, trt=trt, cuda=cuda)["y"], 2 * x)
    assert [ev[0] for ev in trt.log].count("deserialize") == 1


def test_numpy_io_goes_through_pinned_buffers_allocated_once():
    class Counting(CpuCuda):
        pinned = 0

        def host(self, shape, dtype):
            Counting.pinned += 1
            return CpuCuda.empty(self, shape, dtype)

    e, trt = engine(cuda=Counting(0))
    for i in range(3):
        np.testing.assert_array_equal(e(x=np.full((2, 3), i, np.float32))["y"], np.full((2, 3), 2 * i))
    assert Counting.pinned == 2   # one input and one output buffer for the one shape


def test_runtime_cache_loaded_before_the_first_context_and_saved_after_running(tmp_path):
    path = tmp_path / "m.engine"
    path.write_bytes(b"plan")
    first = doubling()
    e = Engine(path, 0, trt=first, cuda=CpuCuda(0))
    e(x=np.ones((2, 3), np.float32))
    events = [ev[0] for ev in first.log]
    assert events.index("cache set") < events.index("context") < events.index("execute") < events.index("cache save")
    assert "cache load" not in events and (tmp_path / "m.engine.runtime-cache").read_bytes() == b"k"
    context_args = [ev[2] for ev in first.log if ev[0] == "context"][0]
    assert len(context_args) == 1        # create_execution_context(runtime_config)
    second = doubling()                  # another process: a fresh TensorRT, the file left by the first
    Engine(path, 0, trt=second, cuda=CpuCuda(0))(x=np.ones((2, 3), np.float32))
    assert [ev for ev in second.log if ev[0] == "cache load"] == [("cache load", 0, b"k")]
    assert (tmp_path / "m.engine.runtime-cache").read_bytes() == b"kk"


def test_no_runtime_cache_without_the_bindings_or_when_off(tmp_path):
    path = tmp_path / "m.engine"
    path.write_bytes(b"plan")
    Engine(path, 0, runtime_cache=False, trt=doubling(), cuda=CpuCuda(0))(x=np.ones((2, 3), np.float32))
    trt = doubling()
    trt.hidden.add("IRuntimeCache")      # full TensorRT has none
    Engine(path, 0, trt=trt, cuda=CpuCuda(0))(x=np.ones((2, 3), np.float32))
    assert not (tmp_path / "m.engine.runtime-cache").exists()
    assert [ev[2] for ev in trt.log if ev[0] == "context"] == [()]


def test_stripped_plans_are_refitted_from_their_network():
    try:
        t = backend.trt()
    except backend.BackendError as e:
        pytest.skip(f"needs TensorRT's network API: {e}")
    network = t.Builder(backend.logger()).create_network(0)
    x = network.add_input("x", t.float32, (1, 2, 4, 4))
    kernel, bias = np.arange(36, dtype=np.float32).reshape(2, 2, 3, 3), np.array([1, 2], np.float32)
    conv = network.add_convolution_nd(x, 2, (3, 3), t.Weights(kernel), t.Weights(bias))
    conv.name = "conv"
    network.mark_output(conv.get_output(0))
    weights = network_weights(t, network)
    assert sorted(weights) == [("conv", "BIAS"), ("conv", "KERNEL")]
    np.testing.assert_array_equal(weights[("conv", "KERNEL")].ravel(), kernel.ravel())
    e, trt = engine(device=1)
    trt.refittable = (["conv"], [t.WeightsRole.KERNEL])     # what the engine asks for
    refit_from_network(e, network)
    assert [(layer, role) for layer, role, _ in trt.refitted] == [("conv", "KERNEL")]
    np.testing.assert_array_equal(trt.refitted[0][2].numpy().ravel(), kernel.ravel())


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to PyTorch: the CUDA side of "
                          "trtnet.runtime is tested here only where one is")


def cuda_engine(trt, device=0):
    return Engine(b"plan", device, runtime_cache=False, trt=trt, cuda=_Cuda(device))


@cuda
@pytest.mark.gpu
def test_cuda_side_with_the_recording_standin():
    """Real streams, device guard, pinned copies, alignment and synchronisation; the stand-in checks the
    current device and stream in execute_async_v3 and computes y = 2x + 1 with a torch kernel on it."""
    trt = StandInTrt({"x": ("FLOAT", (-1, 3))}, {"y": ("FLOAT", (-1, 3))}, PROFILES, lambda x: {"y": 2 * x + 1},
                     torch.cuda.current_device)
    e = cuda_engine(trt)
    rng = np.random.default_rng(0)
    for n in (2, 5, 2, 8, 1):
        x = rng.standard_normal((n, 3), dtype=np.float32)
        np.testing.assert_array_equal(e(x=x)["y"], 2 * x + 1)
    big = torch.randn(64, 3, device="cuda")
    for lo, hi in ((1, 4), (3, 11), (0, 8)):   # slices off the 256-byte alignment among them
        np.testing.assert_allclose(e(x=big[lo:hi])["y"].cpu().numpy(), (2 * big[lo:hi] + 1).cpu().numpy())
    ctx = e.context(torch.cuda.Stream())   # profile 1, its own stream
    xs = [torch.full((n, 3), float(n), device="cuda") for n in (8, 16, 32)]
    for x in xs:
        assert torch.equal(ctx(x=x)["y"], 2 * x + 1)
    pool = EnginePool(b"plan", devices=[0], contexts_per_device=2, runtime_cache=False, trt=trt, cuda=_Cuda)
    before = len(executions(trt))
    batches = [{"x": torch.full((n, 3), float(i), device="cuda")} for i, n in enumerate([2, 16, 8, 30, 4] * 4)]
    for i, r in enumerate(pool.run(batches)):
        assert torch.equal(r["y"], 2 * batches[i]["x"] + 1)
    runs = executions(trt)[before:]
    assert len(runs) == 20 and {ev[2] for ev in runs} == {0, 1}   # batches of 16 and 30 only on profile 1
    empty = cuda_engine(StandInTrt({"x": ("FLOAT", (-1, 3))}, {"y": ("FLOAT", (-1, 3))},
                                   [{"x": ((0, 3), (2, 3), (4, 3))}], lambda x: {"y": x + 1}, torch.cuda.current_device))
    assert empty(x=np.zeros((0, 3), np.float32))["y"].shape == (0, 3)
