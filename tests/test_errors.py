"""One error policy for every command: a failure is one `error:` line, at the user's file:line where the mistake
is in the user's file (never a file of trtnet's own), exit status 1, a traceback only with -v or TRTNET_DEBUG=1;
progress bars only on a terminal."""
import fcntl
import importlib.util
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios

import pytest

import trtnet as tn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
ENV.pop("TRTNET_DEBUG", None)
EXPORT_WTS = os.path.join(ROOT, "scripts", "export_wts.py")

MODELS = '''\
import trtnet as tn
from torch import nn
from trtnet.zoo import register


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x)


@register("plain", ("N", 3, 8, 8), Net)
def plain(w, shape):
    g = tn.Graph("plain")
    g.output(tn.conv(g.input("images", shape), w["conv"], 4, 3), "y")
    return g


@register("bad", ("N", 3, 8, 8), Net)
def bad(w, shape):
    g = tn.Graph("bad")
    g.output(tn.conv(g.input("images", shape), w["conv"], 8, 3), "y")   # MISTAKE: the weights have 4 channels
    return g


@register("noweights", ("N", 3, 8, 8), Net)
def noweights(w, shape):
    return plain(w, shape)
'''
FACTORIES = '''\
def nothing():
    return None


def broken():
    raise RuntimeError("the module cannot be made")   # MISTAKE
'''
BROKEN = '''\
from trtnet.zoo import register

size = undefined_name   # MISTAKE
'''


def mistake_line(text):
    return 1 + next(i for i, line in enumerate(text.splitlines()) if "# MISTAKE" in line)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A user's directory: model files, a factory module, weights for `plain` and `bad`, a damaged engine."""
    import torch
    d = tmp_path_factory.mktemp("user")
    for name, text in (("models.py", MODELS), ("factories.py", FACTORIES), ("broken.py", BROKEN)):
        (d / name).write_text(text)
    (d / "weights").mkdir()
    torch.manual_seed(0)
    state = {f"conv.{k}": v.numpy() for k, v in torch.nn.Conv2d(3, 4, 3).state_dict().items()}
    for name in ("plain", "bad"):
        tn.save_wts(state, str(d / "weights" / f"{name}.wts"))
    (d / "damaged.engine").write_bytes(bytes(range(256)) * 8)
    return d


def run(args, cwd, env=ENV, stderr=subprocess.PIPE):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr,
                          text=True, timeout=300)


def error_line(r):
    """The one `error:` line, last on stderr, after no traceback; exit status 1."""
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0] == r.stderr.strip().splitlines()[-1], r.stderr
    assert not re.search(r"trtnet[/\\][\w/\\]*\.py|[/\\]zoo[/\\]|site-packages", lines[0]), lines[0]
    return lines[0]


M = "models.py"
CASES = {   # id: (arguments, words the line names, the user's file whose line it starts with, or None)
    "build-unknown-model": (["-m", "trtnet.build", "nosuch"], ["'nosuch'", "--list"], None),
    "build-missing-weights": (["-m", "trtnet.build", f"{M}:noweights"], ["weights/noweights.wts"], None),
    "build-bad-layer-call": (["-m", "trtnet.build", f"{M}:bad"], ["conv.weight", "(4, 3, 3, 3)", "(8, 3, 3, 3)"], M),
    "build-model-file-fails": (["-m", "trtnet.build", "broken.py"], ["undefined_name"], "broken.py"),
    "check-unknown-model": (["-m", "trtnet.check", "nosuch"], ["'nosuch'"], None),
    "check-missing-weights": (["-m", "trtnet.check", f"{M}:noweights"], ["weights/noweights.wts"], None),
    "check-bad-layer-call": (["-m", "trtnet.check", f"{M}:bad"], ["conv.weight", "(8, 3, 3, 3)"], M),
    "export-unknown-model": (["-m", "trtnet.export", "triton", "nosuch", "--repo", "repo"], ["'nosuch'"], None),
    "export-missing-weights": (["-m", "trtnet.export", "polygraphy", f"{M}:noweights", "-o", "net.py"],
                               ["weights/noweights.wts"], None),
    "export-bad-layer-call": (["-m", "trtnet.export", "polygraphy", f"{M}:bad", "-o", "net.py"],
                              ["conv.weight", "(8, 3, 3, 3)"], M),
    "run-damaged-engine": (["-m", "trtnet.run", "damaged.engine"], ["damaged.engine"], None),
    "run-missing-engine": (["-m", "trtnet.run", "none.engine"], ["none.engine"], None),
    "export_wts-unknown-model": ([EXPORT_WTS, "nosuch"], ["'nosuch'"], None),
    "export_wts-missing-checkpoint": ([EXPORT_WTS, f"{M}:plain", "--checkpoint", "none.pth"], ["none.pth"], None),
    "export_wts-model-file-fails": ([EXPORT_WTS, "broken.py"], ["undefined_name"], "broken.py"),
    "port-factory-returns-none": (["-m", "trtnet.port", "factories:nothing", "-o", "p.py"],
                                  ["factories:nothing", "NoneType", "torch.nn.Module"], None),
    "port-factory-raises": (["-m", "trtnet.port", "factories:broken", "-o", "p.py"],
                            ["factories:broken", "cannot be made"], "factories.py"),
    "port-no-such-module": (["-m", "trtnet.port", "nosuchpkg:make", "-o", "p.py"], ["nosuchpkg"], None),
    "port-unknown-timm-model": (["-m", "trtnet.port", "timm:nosuchmodel", "-o", "p.py"], ["nosuchmodel"], None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_error_line(work, case):
    args, words, where = CASES[case]
    if "timm:" in args[2:] and importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")
    line = error_line(run(args, work))
    for w in words:
        assert w in line, (w, line)
    text = {M: MODELS, "broken.py": BROKEN, "factories.py": FACTORIES}
    if where is None:
        assert not re.match(r"error: \S+\.py:\d+:", line), line
    else:
        assert line.startswith(f"error: {where}:{mistake_line(text[where])}: "), line
    assert not (work / "engines").exists() and not (work / "repo").exists() and not (work / "p.py").exists()


@pytest.mark.parametrize("case,env", [("build-bad-layer-call", {}), ("check-unknown-model", {"TRTNET_DEBUG": "1"}),
                                      ("export-bad-layer-call", {}), ("run-missing-engine", {}),
                                      ("export_wts-unknown-model", {}), ("port-factory-raises", {})])
def test_verbose_shows_the_traceback(work, case, env):
    args, words = CASES[case][0] + ([] if env else ["-v"]), CASES[case][1]
    r = run(args, work, dict(ENV, **env))
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(w in last for w in words), r.stderr


def build_stderr(cwd, terminal, *extra):
    """stderr of a small build (verified against PyTorch), into a pipe or onto a pseudo-terminal."""
    args = [sys.executable, "-m", "trtnet.build", f"{M}:plain", "--no-engine-cache", *extra]
    if not terminal:
        r = run(args[1:], cwd)
        assert r.returncode == 0, r.stderr
        return r.stderr
    main, sub = pty.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # a new one is 0 columns wide
    p = subprocess.Popen(args, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=sub)
    os.close(sub)
    chunks = []
    while True:  # read while it runs: a full terminal buffer would stop the build
        try:
            chunk = os.read(main, 1 << 16)
        except OSError:  # EIO: the build has exited and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    err = b"".join(chunks).decode(errors="replace")
    assert p.wait(timeout=300) == 0, err
    return err


def test_progress_bars_only_on_a_terminal(work, tmp_path):
    shutil.copytree(work, tmp_path, dirs_exist_ok=True)
    piped = build_stderr(tmp_path, terminal=False)
    assert "\r" not in piped and "it/s" not in piped and "build:" not in piped, piped
    drawn = build_stderr(tmp_path, terminal=True)   # the terminal ends lines with \r\n; a bar redraws with \r alone
    assert re.search(r"\r(?!\n)", drawn), "the same build draws bars on a terminal: " + drawn
    quiet = build_stderr(tmp_path, True, "-q")
    assert "\r" not in quiet.replace("\r\n", "\n") and "it/s" not in quiet, quiet


def raised(exc, *files):
    """`exc` as raised by a chain of calls from code compiled as `files` (outermost first, each calling the next
    at its line 3; the innermost raises at line 2) and caught by code compiled as trtnet's own command line."""
    scope = {}
    exec(compile("def catch(call, exc):\n    try:\n        call(exc)\n    except Exception as e:\n        return e\n",
                 os.path.join(ROOT, "trtnet", "cli.py"), "exec"), scope)
    call = None
    for path in reversed(files):
        env = {"inner": call}
        body = "    raise exc\n" if call is None else "    x = 1\n    inner(exc)\n"
        exec(compile("def call(exc):\n" + body, path, "exec"), env)
        call = env["call"]
    return scope["catch"](call, exc)


ZOO_TEXT = os.path.join(ROOT, "zoo", "text.py")


@pytest.mark.parametrize("files,exc,place", [
    ([ZOO_TEXT], TypeError("embedding() takes 2 arguments"), "zoo/text.py:2"),
    ([ZOO_TEXT], LookupError("no weight 'embed.weight'"), None),
    ([os.path.join(ROOT, "trtnet", "zoo.py")], LookupError("unknown model 'x'"), None),
    ([os.path.join(ROOT, "scripts", "export_wts.py"), os.path.join(ROOT, "trtnet", "zoo.py")],
     LookupError("unknown model 'x'"), None),
    ([os.path.join(ROOT, "scripts", "export_wts.py")], ValueError("bad"), None),
    ([os.path.join(os.path.dirname(os.__file__), "json", "decoder.py")], ValueError("bad"), None),
    (["<string>"], ValueError("bad"), None),
    ([os.path.join(ROOT, "tests", "data", "mine.py"), ZOO_TEXT], TypeError("bad argument"), "tests/data/mine.py:3"),
    ([os.path.join(ROOT, "tests", "data", "mine.py"), ZOO_TEXT], LookupError("no weight"), "tests/data/mine.py:3"),
])
def test_place_of_a_mistake(monkeypatch, files, exc, place):
    """The user's own file first; a zoo model file's line for a mistake in its layer calls but not for something
    not found; never trtnet's own files, Python's or a file that is no file."""
    from trtnet import cli
    monkeypatch.chdir(ROOT)
    text = cli.message(raised(exc, *files))
    assert text.startswith(f"{place}: ") if place else not re.match(r"\S+:\d+: ", text), text
