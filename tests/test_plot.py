"""`python -m trtnet.check MODEL --plot FILE`: the picture of each layer's error is written as a real image, and a
path it cannot write is one error line before any work."""
import os
import subprocess
import sys

from PIL import Image

import trtnet as tn
from trtnet import harness
from trtnet.check.report import plot_errors
from trtnet.weights import save_safetensors
from test_against_module import MODEL, load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def check(*args, cwd):
    return subprocess.run([sys.executable, "-m", "trtnet.check", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600)


def valid_png(path):
    assert path.stat().st_size > 10_000
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 600 and im.size[1] > 400
        im.verify()


def test_plot_errors_draws_both_columns(tmp_path):
    (tmp_path / "net.py").write_text(MODEL)
    _, _, graph, module = load(str(tmp_path / "net.py"), "net_eps")
    reports = tn.check(graph, reference=module)
    assert all(any(r.mod is not None for r in rep.rows) for rep in reports)
    plot_errors(reports, str(tmp_path / "e.png"))
    valid_png(tmp_path / "e.png")
    plot_errors(reports[:1], str(tmp_path / "e.svg"))
    assert (tmp_path / "e.svg").read_text().lstrip().startswith("<?xml")


def test_plot_is_a_png(tmp_path):
    (tmp_path / "net.py").write_text(MODEL)
    save_safetensors(harness.export_state(str(tmp_path / "net.py:net")), str(tmp_path / "net_eps.safetensors"))
    r = check("net.py:net_eps", "--plot", "out/errors.png", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr     # the planted eps fails; the picture shows where
    assert "drawn in out/errors.png" in r.stdout
    valid_png(tmp_path / "out" / "errors.png")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["errors.png"]   # no staged temporary left


def test_plot_to_a_directory_is_one_error_line(tmp_path):
    for bad, what in ((tmp_path, "is a directory"), (tmp_path / "errors.txt", ".png, .svg or .pdf")):
        r = check("lenet", "--plot", str(bad), cwd=tmp_path)
        assert r.returncode != 0 and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --plot") and what in lines[0], r.stderr
    assert list(tmp_path.iterdir()) == []
