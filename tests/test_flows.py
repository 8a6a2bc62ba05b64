"""The README's command lines as a user types them, for every zoo model and example model file in each weight
format, each flow in a fresh directory: `python scripts/export_wts.py MODEL [--format F]`, `python -m trtnet.build
MODEL --no-verify`, then `python -m trtnet.check MODEL` at a small shape against PyTorch.

The matrix calls each command's `main(argv)` in this process: the code `python -m` runs, without a new interpreter
importing torch and TensorRT three times per flow. A few flows run the exact command lines as subprocesses."""
import functools
import os
import re
import runpy
import shutil
import subprocess
import sys

import pytest
import torch

from trtnet import cli, zoo
from trtnet.build.__main__ import main as build_main
from trtnet.check.__main__ import main as check_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPORT = os.path.join(ROOT, "scripts", "export_wts.py")
FORMATS = ("wts", "safetensors", "pth")
TINY = os.path.join(ROOT, "tests", "data", "tiny_models.py")
# tiny_models.py's `typo` and `wrong` are broken on purpose (tests/test_cli.py checks their errors)
FILE_MODELS = ("my_unet.py", "tiny_models.py:tiny", "tiny_models.py:pair", "tiny_models.py:ids")
# not slow: the default format on the README's model file and on zoo models of other layer kinds (PReLU, LSTM,
# embeddings and attention)
QUICK = {"my_unet.py", "tiny_models.py:ids", "mtcnn_onet", "silero_vad", "text_encoder"}


def readme_unet():
    """The README's U-Net ("A model of your own") as a model file: its definitions and its register line.
    The lines from `module = UNet()` on record and check it in Python, which the commands do themselves."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = re.search(r"```python\n(.*?)```", readme.split("## A model of your own", 1)[1], re.S).group(1)
    return block.split("\nmodule = ", 1)[0] + "\n"


def place(model, directory):
    """Write the model's file into `directory` (a user's own); a zoo name stays as it is."""
    path = model.partition(":")[0]
    if path == "my_unet.py":
        (directory / path).write_text(readme_unet())
    elif path == "tiny_models.py":
        shutil.copy(TINY, directory / path)
    return model


@functools.cache
def export_main():
    return runpy.run_path(EXPORT, run_name="export_wts")["main"]


def call(main, argv, capsys):
    """Run a command line's main; its exit status must be 0. Returns what it printed to stdout."""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"{' '.join(argv)}: exit status {code}\n{out[-3000:]}\n{err[-3000:]}"
    return out


def check_args(spec):
    """At the registry's small test shape where there is one, a batch of 1: batches are tests/test_zoo.py's."""
    shape = ["--shape", "x".join(map(str, spec.test_shape))] if spec.test_shape else []
    return [*shape, "--batch", "1"]


def export_args(spec, model, fmt, directory):
    """The export command; a model that learns on bundled data (a minute) exports from a checkpoint of its fresh
    module instead: training is not what a flow tests (CI's set-up runs the README's quick start, which trains)."""
    argv = [model] + ([] if fmt == "wts" else ["--format", fmt])
    if spec.train is not None and spec.dataset is not None:
        torch.save(spec.torch_module().state_dict(), directory / "init.pth")
        argv += ["--checkpoint", "init.pth"]
    return argv


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh directory as the working directory; removed afterwards (weights and engines of the largest
    models take gigabytes). Command lines run here keep pytest's signal handling: each install would leave a
    watcher thread and a pipe behind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.Signals, "install", lambda self: None)
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def params():
    models = [*zoo.names(), *FILE_MODELS]
    return [pytest.param(m, f, id=f"{m}-{f}", marks=[] if f == "wts" and m in QUICK else [pytest.mark.slow])
            for m in models for f in FORMATS]


@pytest.mark.parametrize("model,fmt", params())
def test_export_build_check(model, fmt, workdir, capsys):
    model = place(model, workdir)
    spec = zoo.get(model)
    weights = os.path.join("weights", f"{spec.name}.{fmt}")
    call(export_main(), export_args(spec, model, fmt, workdir), capsys)
    assert os.path.isfile(weights)
    out = call(build_main, [model, "--no-verify"], capsys)
    assert f"weights  {weights}" in out, "the build reads the exported file"
    assert os.path.getsize(os.path.join("engines", f"{spec.name}.engine")) > 0
    out = call(check_main, [model, *check_args(spec)], capsys)
    assert "PASS" in out and "FAIL" not in out, out


def run(*argv, cwd):
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert r.returncode == 0, f"{' '.join(argv)}: exit status {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.mark.parametrize("model,export_extra", [("my_unet.py", []),
                                                pytest.param("mtcnn_rnet", [], marks=pytest.mark.slow),
                                                pytest.param("audio_cnn", ["--seed", "3"], marks=pytest.mark.slow)])
def test_readme_command_lines(model, export_extra, tmp_path, monkeypatch):
    """The README's three commands, each a new interpreter, with the default .wts weights; the build compares
    its TensorRT network with PyTorch too."""
    monkeypatch.chdir(tmp_path)
    model = place(model, tmp_path)
    name = zoo.get(model).name
    assert f"wrote weights/{name}.wts" in run(EXPORT, model, *export_extra, cwd=tmp_path)
    out = run("-m", "trtnet.build", model, cwd=tmp_path)
    assert f"engines/{name}.engine" in out and "check" in out, out
    assert "PASS" in run("-m", "trtnet.check", model, cwd=tmp_path)
