"""Triton model repositories and Polygraphy network scripts. Each Triton config is parsed with Triton's own
ModelConfig protobuf and checked against the TensorRT network's IO."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import trtnet as tn
from trtnet import backend, files
from trtnet.cli import remove_pending
from trtnet.engine import input_profiles
from trtnet.export.triton import TRITON_TYPES, ExportError, write_repository
from trtnet.tensors import TensorSpec, network_io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="needs tritonclient[grpc] (the test extra)")
from google.protobuf import text_format  # noqa: E402  (installed with tritonclient[grpc])

QUICK_ZOO = ["lenet", "mobilenet_v3_small", "squeezenet1_1"]


def parse(model_dir):
    with open(os.path.join(model_dir, "config.pbtxt")) as f:
        return text_format.Parse(f.read(), model_config_pb2.ModelConfig())


def cross_check(cfg, inputs, outputs, profiles):
    """Every name, data type and dim of `cfg` against the network's IO TensorSpecs."""
    batched = all(s.shape[0] == -1 and -1 not in s.shape[1:] for s in [*inputs, *outputs])
    if batched:
        assert cfg.max_batch_size == max(p[s.name][2][0] for p in profiles for s in inputs[:1])
        assert list(cfg.dynamic_batching.preferred_batch_size) == sorted(
            {p[inputs[0].name][k][0] for p in profiles for k in (1, 2)})
    else:
        assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    for got, want in [(cfg.input, inputs), (cfg.output, outputs)]:
        assert [t.name for t in got] == [s.name for s in want]
        for t, s in zip(got, want):
            assert model_config_pb2.DataType.Name(t.data_type) == TRITON_TYPES[s.dtype]
            dims = list(s.shape[1:] if batched else s.shape)
            assert list(t.dims) == (dims or [1]) and (t.HasField("reshape") == (not dims))
    assert cfg.platform == "tensorrt_plan"


def hand_network(kind):
    """(builder, network, keep, profiles) built through TensorRT's network API."""
    t = backend.trt()
    builder = t.Builder(backend.logger())
    net = builder.create_network(0)
    keep = [np.full((1, 1, 1, 1), 2, np.float32)]

    def double(x, name):
        c = net.add_constant((1,) * len(x.shape), t.Weights(keep[0].reshape((1,) * len(x.shape))))
        y = net.add_elementwise(x, c.get_output(0), t.ElementWiseOperation.PROD).get_output(0)
        y.name = name
        net.mark_output(y)
        return y

    if kind == "mixed":   # int32 ids and float features -> a float and an int32 output
        ids = net.add_input("ids", t.int32, (-1, 5))
        feats = net.add_input("feats", t.float32, (-1, 5))
        cast = net.add_cast(ids, t.float32).get_output(0)
        y = net.add_elementwise(cast, feats, t.ElementWiseOperation.SUM).get_output(0)
        y.name = "sum"
        net.mark_output(y)
        ident = net.add_identity(ids).get_output(0)
        ident.name = "ids_out"
        net.mark_output(ident)
        shapes = {"ids": ((1, 5), (4, 5), (16, 5)), "feats": ((1, 5), (4, 5), (16, 5))}
        return builder, net, keep, [shapes]
    shape = {"fixed": (2, 3, 8, 8), "batch": (-1, 3, 8, 8), "hw": (-1, 3, -1, -1)}[kind]
    x = net.add_input("images", t.float32, shape)
    double(x, "doubled")
    double(net.add_reduce(x, t.ReduceOperation.AVG, 1 << 1, True).get_output(0), "mean")   # two outputs
    if kind == "fixed":
        return builder, net, keep, [{"images": (shape,) * 3}]
    hw = (8, 8) if kind == "batch" else (32, 32)
    profiles = [{"images": ((1, 3, 8, 8), (4, 3, *hw), (8, 3, *hw))},
                {"images": ((1, 3, 8, 8), (16, 3, *hw), (32, 3, *hw))}]
    return builder, net, keep, profiles


@pytest.mark.parametrize("kind", ["fixed", "batch", "hw", "mixed"])
def test_triton_config_matches_the_network(tmp_path, kind):
    builder, net, keep, profiles = hand_network(kind)
    config = builder.create_builder_config()
    for shapes in profiles:
        p = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            p.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(p)
    plan = builder.build_serialized_network(net, config)
    assert plan is not None
    path = write_repository(net, bytes(plan), str(tmp_path / "repo"), "m", profiles, instances_per_gpu=2,
                            max_queue_delay_us=100, gpus=[0, 1])
    cfg = parse(path)
    inputs, outputs = network_io(net)
    cross_check(cfg, inputs, outputs, profiles)
    assert cfg.name == "m" and (tmp_path / "repo" / "m" / "1" / "model.plan").read_bytes() == bytes(plan)
    group, = cfg.instance_group
    assert (group.count, list(group.gpus), model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind)) == (
        2, [0, 1], "KIND_GPU")
    assert list(group.profile) == ([str(i) for i in range(len(profiles))] if len(profiles) > 1 else [])
    if cfg.max_batch_size:
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert sorted(os.listdir(tmp_path / "repo")) == ["m"]


def test_every_triton_type_and_per_sample_scalars(tmp_path):
    specs = [TensorSpec(f"in_{d}", d, (-1, 2), [((1, 2), (2, 2), (4, 2))]) for d in TRITON_TYPES]
    outputs = [TensorSpec("score", "float32", (-1,))]
    cfg = parse(write_repository((specs, outputs), b"plan", str(tmp_path), "types"))
    cross_check(cfg, specs, outputs, [{s.name: s.profiles[0] for s in specs}])
    assert list(cfg.output[0].reshape.shape) == []


def test_triton_export_errors_leave_nothing_behind(tmp_path):
    repo = tmp_path / "repo"
    good = ([TensorSpec("x", "float32", (-1, 2), [((1, 2), (2, 2), (4, 2))])], [TensorSpec("y", "float32", (-1, 2))])
    write_repository(good, b"old plan", str(repo), "m")
    fp8 = ([TensorSpec("x", "float8_e4m3fn", (4, 2))], good[1])
    with pytest.raises(ExportError, match="tensor 'x': data type float8_e4m3fn has no Triton equivalent"):
        write_repository(fp8, b"plan", str(repo), "m")
    no_one = ([TensorSpec("x", "float32", (-1, 2), [((2, 2), (2, 2), (4, 2))])], good[1])
    with pytest.raises(ExportError, match="no optimization profile takes batch 1"):
        write_repository(no_one, b"plan", str(repo), "m")
    with pytest.raises(ExportError, match="invalid Triton model name"):
        write_repository(good, b"plan", str(repo), "../m")
    assert sorted(os.listdir(repo)) == ["m"] and (repo / "m" / "1" / "model.plan").read_bytes() == b"old plan"
    write_repository(good, b"new plan", str(repo), "m")   # replaces the older version in place
    assert sorted(os.listdir(repo)) == ["m"] and (repo / "m" / "1" / "model.plan").read_bytes() == b"new plan"


def test_triton_write_stopped_midway_leaves_the_old_model(tmp_path):
    """The plan is written by a callable that removes what a signal would (files.PENDING, through the command
    lines' remove_pending) and then fails: the repository holds the old model only, then and after."""
    repo = tmp_path / "repo"
    io = ([TensorSpec("x", "float32", (-1, 2), [((1, 2), (2, 2), (4, 2))])], [TensorSpec("y", "float32", (-1, 2))])
    write_repository(io, b"old plan", str(repo), "m")
    seen = []

    def interrupted(f):
        f.write(b"half a plan")
        seen.append(sorted(os.listdir(repo)))
        remove_pending()   # what the signal handler does
        seen.append(sorted(os.listdir(repo)))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_directory(str(repo / "m"), {"config.pbtxt": b"new", "1/model.plan": interrupted})
    assert len(seen[0]) == 2 and seen[0][1] == "m" and seen[0][0].startswith(".m.tmp-"), seen
    assert seen[1] == ["m"] and sorted(os.listdir(repo)) == ["m"] and not files.PENDING
    assert (repo / "m" / "1" / "model.plan").read_bytes() == b"old plan"


def untrained_state(name):
    """Seeded weights straight from the PyTorch module (zoo.export_state trains LeNet, which takes a minute)."""
    import torch
    from trtnet import zoo
    torch.manual_seed(0)
    return {k: v.detach().numpy() for k, v in zoo.get(name).torch_module().state_dict().items()}


def zoo_case(name, tmp_path):
    from trtnet import zoo
    from trtnet.engine import create_network
    spec = zoo.get(name)
    graph = spec.graph(tn.WeightMap(untrained_state(name)))
    builder, net, emission = create_network(graph)
    profiles = input_profiles(graph)
    cfg = parse(write_repository(net, b"plan", str(tmp_path), name, profiles))
    cross_check(cfg, *network_io(net), profiles)
    batch_only = set(graph.dims) == {"N"} and all(str(n.shape[0]) == "N" for n in [*graph.inputs, *graph.outputs])
    assert cfg.max_batch_size == (graph.ranges["N"][2] if batch_only else 0)
    assert [t.name for t in cfg.input] == [n.name for n in graph.inputs]
    del emission


@pytest.mark.parametrize("name", QUICK_ZOO)
def test_triton_config_for_zoo_models(tmp_path, name):
    zoo_case(name, tmp_path)


@pytest.mark.slow
def test_triton_config_for_every_zoo_model(tmp_path):
    from trtnet import zoo
    for name in zoo.names():
        zoo_case(name, tmp_path / name)


@pytest.fixture(scope="module")
def lenet_weights(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("w") / "lenet.safetensors")
    tn.save_safetensors(untrained_state("lenet"), path)
    return path


def cli(*args):
    """The export command in this process (a subprocess would pay for importing torch and the zoo again)."""
    from trtnet.export.__main__ import main
    return main(list(args))


def test_triton_command_builds_and_writes_a_repository(tmp_path, lenet_weights, capsys):
    assert cli("triton", "lenet", "--weights", lenet_weights, "--repo", str(tmp_path), "--batch", "1,4,16",
               "--instances-per-gpu", "2", "--max-queue-delay-us", "100") == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'lenet'} (config.pbtxt, 1/model.plan: ")
    cfg = parse(tmp_path / "lenet")
    assert (cfg.max_batch_size, list(cfg.dynamic_batching.preferred_batch_size)) == (16, [4, 16])
    assert [(t.name, list(t.dims)) for t in cfg.input] == [("data", [1, 32, 32])]
    assert [(t.name, list(t.dims)) for t in cfg.output] == [("prob", [10])]
    assert cfg.instance_group[0].count == 2 and (tmp_path / "lenet" / "1" / "model.plan").stat().st_size > 100_000


def test_export_command_errors_are_one_line(tmp_path, capsys):
    assert cli("triton", "no_such_model", "--repo", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'no_such_model'") and err.count("\n") == 1, err
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_polygraphy_script_builds_with_polygraphy(tmp_path, lenet_weights):
    """`polygraphy convert` in a subprocess, as a user runs it (about 20 s: it imports trtnet and the zoo)."""
    exe = shutil.which("polygraphy", path=os.path.dirname(sys.executable)) or shutil.which("polygraphy")
    if exe is None:
        pytest.skip("polygraphy is not installed (pip install polygraphy)")
    script = tmp_path / "net.py"
    assert cli("polygraphy", "lenet", "--weights", lenet_weights, "-o", str(script)) == 0
    env = {**os.environ, "PYTHONPATH": ROOT}
    if backend.is_rtx():
        env["POLYGRAPHY_USE_TENSORRT_RTX"] = "1"
    r = subprocess.run([exe, "convert", "net.py", "--model-type=trt-network-script", "--trt-config-script", "net.py",
                        "-o", "x.engine"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / "x.engine").stat().st_size > 100_000


def test_polygraphy_inspect_lists_the_layers(tmp_path, lenet_weights):
    """`polygraphy inspect model` on the script, through trtnet's launcher (Polygraphy imports `tensorrt` by name)."""
    pytest.importorskip("polygraphy")
    script = tmp_path / "net.py"
    assert cli("polygraphy", "lenet", "--weights", lenet_weights, "-o", str(script)) == 0
    r = subprocess.run([sys.executable, "-m", "trtnet.export", "polygraphy-tool", "inspect", "model", "net.py",
                        "--model-type=trt-network-script", "--show", "layers"], capture_output=True, text=True,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "22 Layer(s)" in r.stdout and "conv1 [Op: LayerType.CONVOLUTION]" in r.stdout
