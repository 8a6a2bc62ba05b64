"""Command line edges: start-up cost, argument validation, one-line errors, signals, output files."""
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

import trtnet as tn
from trtnet.files import write_atomic
from trtnet.errors import TrtnetError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "data", "tiny_models.py")
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run(*args, cwd, env=None):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env or ENV, capture_output=True, text=True,
                          timeout=600)


def one_line_error(r, *needles):
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and lines[0] == r.stderr.strip().splitlines()[-1], r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A directory with weights for the model file's models, exported by the script as a user would."""
    d = tmp_path_factory.mktemp("models")
    for name, fmt in (("tiny", "wts"), ("pair", "wts"), ("ids", "safetensors"), ("typo", "wts")):
        r = run(os.path.join(ROOT, "scripts", "export_wts.py"), f"{MODELS}:{name}", "--format", fmt, cwd=d)
        assert r.returncode == 0, r.stderr
    return d


# start-up ------------------------------------------------------------------------------------------------------
HEAVY = ("torch", "torchvision", "tensorrt", "tensorrt_rtx")


@pytest.mark.parametrize("cmd", [["-m", "trtnet.build"], ["-m", "trtnet.check"],
                                 [os.path.join(ROOT, "scripts", "export_wts.py")]])
def test_help_loads_nothing_heavy_and_is_quick(cmd, tmp_path):
    script = ("import runpy, sys; sys.argv = [sys.argv[0], '--help']\n"
              f"mod = {cmd[-1]!r} if {cmd[0]!r} == '-m' else None\n"
              "try:\n"
              f"    runpy.run_module(mod, run_name='__main__') if mod else runpy.run_path({cmd[-1]!r}, "
              "run_name='__main__')\n"
              "except SystemExit:\n"
              f"    print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    r = run("-c", script, cwd=tmp_path)
    assert r.stdout.strip().endswith("[]"), r.stdout[-300:] + r.stderr
    start = time.perf_counter()
    r = run(*cmd, "--help", cwd=tmp_path)
    took = time.perf_counter() - start
    assert r.returncode == 0 and "usage:" in r.stdout and took < 1.5, took


def test_import_trtnet_is_light(tmp_path):
    r = run("-c", f"import sys, trtnet; print(sorted(m for m in {HEAVY!r} if m in sys.modules))", cwd=tmp_path)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


# argument validation (answers before torch loads) ----------------------------------------------------------
@pytest.mark.parametrize("args,needles", [
    (["trtnet.check", "lenet", "--batch", "0"], ["--batch", "'0'"]),
    (["trtnet.build", "lenet", "--batch", "8,4,2"], ["'8,4,2'", "MIN <= OPT <= MAX"]),
    (["trtnet.build", "lenet", "--batch", "2147483648"], ["'2147483648'", "2147483647"]),
    (["trtnet.build", "lenet", "--workspace", "-5"], ["--workspace", "'-5'"]),
    (["trtnet.build", "lenet", "--workspace", "99999999999"], ["--workspace", "'99999999999'"]),
    (["trtnet.build", "lenet", "--device", "-1"], ["--device", "'-1'"]),
    (["trtnet.check", "lenet", "--shape", "1x32y32"], ["--shape", "'1x32y32'"]),
    (["trtnet.build", "lenet", "--shapes", "data:1x1x32x32,8x1"], ["--shapes", "data:1x1x32x32,8x1"]),
    (["trtnet.build", "lenet", "-o", "/dev/null"], ["/dev/null", "not a regular file"]),
    (["trtnet.build", "lenet", "--weights", "."], ["--weights", "directory"]),
])
def test_arguments_refused_before_loading(args, needles, tmp_path):
    r = run("-m", *args, cwd=tmp_path)
    one_line_error(r, *needles)


def test_output_paths_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line_error(run("-m", "trtnet.build", "lenet", "-o", "afile/x.engine", cwd=tmp_path), "afile", "not a directory")
    (tmp_path / "adir").mkdir()
    one_line_error(run("-m", "trtnet.build", "lenet", "-o", "adir", cwd=tmp_path), "adir", "directory")


def test_shape_accepts_x_and_commas():
    from trtnet.cli import parse_dims
    assert parse_dims("1x32x32") == parse_dims("1,32,32") == (1, 32, 32)


def test_onnx_refuses_a_non_onnx_file(tmp_path):
    (tmp_path / "m.onnx").write_text("hello, not a protobuf")
    one_line_error(run("-m", "trtnet.check", "--onnx", "m.onnx", cwd=tmp_path), "m.onnx", "not an ONNX model")


# shapes -> profiles ----------------------------------------------------------------------------------------
def _graph():
    import trtnet as tn
    g = tn.Graph("two")
    a = g.input("a", ("N", 3, "H", "W"), ranges={"H": (8, 16, 32), "W": (8, 16, 32)})
    b = g.input("b", ("N", "L"), "int32", ranges={"L": (1, 2, 4)})
    g.output(tn.relu(a), "x")
    g.output(b * 2, "y")
    return g


def test_shapes_become_per_dimension_profiles():
    from trtnet.cli import parse_shapes, to_profiles
    g = _graph()
    specs = parse_shapes(["a:1x3x8x8,2x3x16x16,4x3x32x32 b:1x1,2x2,4x3"], ["a:5x3x8x8"])
    profs = to_profiles(g, specs)
    assert profs[0] == {"N": (1, 2, 4), "H": (8, 16, 32), "W": (8, 16, 32), "L": (1, 2, 3)}
    assert profs[1] == {"N": (5, 5, 5), "H": (8, 8, 8), "W": (8, 8, 8)}
    assert to_profiles(g, parse_shapes(["a:1x3x8x8;a:2x3x8x8"]))[1]["N"] == (2, 2, 2)
    assert to_profiles(g, [], (1, 4, 8)) == [{"N": (1, 4, 8)}]


@pytest.mark.parametrize("text,needles", [
    ("a:1x4x8x8", ["fixed at 3", "a:1x4x8x8"]),
    ("a:1x3x8x8,2x3x8x8,4x3x8x8 b:1x1,2x2,5x2", ["dimension 'N'", "b:1x1,2x2,5x2"]),
    ("c:1x3x8x8", ["no input 'c'", "a (N, 3, H, W)", "b (N, L)"]),
    ("a:1x3x8", ["rank 4"]),
])
def test_shapes_mismatch(text, needles):
    from trtnet.cli import UsageError, parse_shapes, to_profiles
    with pytest.raises(UsageError) as e:
        to_profiles(_graph(), parse_shapes([text]))
    for n in needles:
        assert n in str(e.value), str(e.value)


# model files end to end ------------------------------------------------------------------------------------
def test_model_file_export_build_check(work):
    r = run("-m", "trtnet.build", f"{MODELS}:tiny", "--shapes", "images:1x3x8x8,2x3x16x16,3x3x32x24",
            "-o", "out/tiny.engine", "--verify-batch", "3", cwd=work)
    assert r.returncode == 0, r.stderr
    assert (work / "out" / "tiny.engine").stat().st_size > 0
    assert "N 1/2/3" in r.stdout and "H 8/16/32" in r.stdout and "W 8/16/24" in r.stdout, r.stdout
    assert "at H=32, W=24, N=3" in r.stdout and "TensorRT build" in r.stdout, r.stdout
    r = run("-m", "trtnet.check", f"{MODELS}:tiny", "--shapes", "images:1x3x8x8,2x3x16x16,3x3x32x24", cwd=work)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("PASS") == 2 and "at N=1, H=8, W=8" in r.stdout and "N=3, H=32, W=24" in r.stdout


@pytest.mark.parametrize("name,outputs", [("pair", ["sum", "prod"]), ("ids", ["pooled"])])
def test_several_inputs_outputs_and_int32(work, name, outputs):
    r = run("-m", "trtnet.check", f"{MODELS}:{name}", "--batch", "1,2,3", cwd=work)
    assert r.returncode == 0, r.stderr
    for o in outputs:
        assert r.stdout.count(f"output {o}:") == 2, r.stdout


def test_check_mismatch_exits_1(work):
    r = run("-m", "trtnet.check", f"{MODELS}:wrong", "--batch", "2", "--weights", "weights/tiny.wts", cwd=work)
    assert r.returncode == 1 and "FAIL" in r.stdout and r.stdout.count("output logits") == 2, r.stdout + r.stderr


def test_weight_prefix_typo_points_at_the_model_line(work):
    line = one_line_error(run("-m", "trtnet.build", f"{MODELS}:typo", cwd=work), "conv1x")
    assert "tiny_models.py:" in line, line


def test_model_file_errors(work, tmp_path):
    one_line_error(run("-m", "trtnet.build", MODELS, cwd=work), "registers", "tiny")
    (tmp_path / "broken.py").write_text("from trtnet.zoo import register\nimport no_such_module_here\n")
    one_line_error(run("-m", "trtnet.check", "broken.py", cwd=tmp_path), "no_such_module_here")


def test_absurd_profile_refused_with_memory(work):
    one_line_error(run("-m", "trtnet.check", f"{MODELS}:tiny", "--batch", "4,4,2000000000", cwd=work), "GiB",
                   "N=2000000000")


def test_traceback_on_request(work):
    r = run("-m", "trtnet.build", f"{MODELS}:typo", cwd=work, env=dict(ENV, TRTNET_DEBUG="1"))
    assert r.returncode == 1 and "Traceback" in r.stderr


# write_atomic ------------------------------------------------------------------------------------------------
def test_write_atomic_refuses_devices_and_directories(tmp_path):
    for p in ("/dev/null", str(tmp_path)):
        with pytest.raises(TrtnetError):
            write_atomic(p, b"x")
    assert os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_write_atomic_through_symlink_keeps_link(tmp_path):
    (tmp_path / "real").write_bytes(b"old")
    os.symlink("real", tmp_path / "link")
    write_atomic(str(tmp_path / "link"), b"new")
    assert os.path.islink(tmp_path / "link") and (tmp_path / "real").read_bytes() == b"new"


def test_write_atomic_keeps_mode(tmp_path):
    p = tmp_path / "secret.engine"
    p.write_bytes(b"old")
    os.chmod(p, 0o600)
    write_atomic(str(p), b"new")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600 and p.read_bytes() == b"new"


def test_write_atomic_long_name(tmp_path):
    name = "e" * 243 + ".engine"
    write_atomic(str(tmp_path / name), b"x")
    assert os.listdir(tmp_path) == [name]


def test_write_atomic_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "a" / "b" / "x.engine"), b"x")
    assert os.listdir(tmp_path) == []


def test_sigterm_while_writing_leaves_no_temp(tmp_path):
    code = ("import os, signal, sys\n"
            "sys.argv = ['x']\n"
            "from trtnet import cli, files\n"
            "real = os.replace\n"
            "def slow(*a):\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    real(*a)\n"
            "os.replace = slow\n"
            "from trtnet.events import Events\n"
            "t = cli.Timeline(False)\n"
            "def go():\n"
            "    with Events(t).phase('writing'):\n"
            f"        files.write_atomic({str(tmp_path / 'new' / 'x.engine')!r}, b'x' * 1000)\n"
            "sys.exit(cli.run_command(type('A', (), {'verbose': False})(), go, t))\n")
    r = run("-c", code, cwd=tmp_path)
    assert r.returncode == 143 and "interrupted (SIGTERM) while writing" in r.stderr, r.stderr
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)


# signals during a build --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_loading(tmp_path, sig, code):
    """Sent as soon as the command says it is building (it then imports and loads): stops within 2 s, no files."""
    from trtnet import zoo
    os.makedirs(tmp_path / "weights")
    tn.save_wts({k: v.numpy() for k, v in zoo.get("lenet").torch_module().state_dict().items()},
                str(tmp_path / "weights" / "lenet.wts"))
    p = subprocess.Popen([sys.executable, "-m", "trtnet.build", "lenet", "--no-verify", "-o", "e/m.engine"],
                         cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stderr.readline()
    p.send_signal(sig)
    start = time.perf_counter()
    out, err = p.communicate(timeout=60)
    took = time.perf_counter() - start
    assert first.startswith("building lenet"), first
    assert p.returncode == code and took < 2 and err.strip().splitlines()[-1].startswith("interrupted"), \
        (p.returncode, took, err)
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_tensorrt_build(tmp_path, sig, code):
    """Sent once TensorRT logs that its build began (-v forwards its log): stops within 2 s, nothing written."""
    r = run(os.path.join(ROOT, "scripts", "export_wts.py"), "resnet152", "--format", "safetensors", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    p = subprocess.Popen([sys.executable, "-m", "trtnet.build", "resnet152", "--no-verify", "-v", "-o", "e/m.engine"],
                         cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in p.stderr:
        seen.append(line)
        if "trtnet.tensorrt:" in line:
            break
    p.send_signal(sig)
    start = time.perf_counter()
    out, err = p.communicate(timeout=60)
    took = time.perf_counter() - start
    err = "".join(seen) + err
    assert p.returncode == code and took < 2, (p.returncode, took, err[-2000:])
    assert f"interrupted ({sig.name}) while TensorRT build" in err, err[-2000:]
    assert not (tmp_path / "e").exists()


def test_zoo_module_listed_without_its_file(tmp_path):
    code = ("import sys\nimport trtnet.zoo as z\nz.MODULES += ('no_such_zoo_module',)\n"
            "from trtnet.build.__main__ import main\nsys.exit(main(['lenet']))\n")
    one_line_error(run("-c", code, cwd=tmp_path), "no_such_zoo_module")
