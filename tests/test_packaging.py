"""What `pip install` puts into site-packages: every trtnet subpackage and the top-level `zoo` of model files; a
wheel built from the repository works from any directory, without the checkout."""
import configparser
import glob
import os
import shutil
import subprocess
import sys

import pytest

from trtnet import zoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _options():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    return cfg["options"]


def test_every_package_is_listed_and_the_zoo_is_top_level():
    opts = _options()
    found = {os.path.dirname(p).replace(os.sep, ".") for p in
             glob.glob("trtnet/**/__init__.py", root_dir=ROOT, recursive=True)}
    assert found | {"zoo"} == set(opts["packages"].split())
    assert "package_dir" not in opts, "packages install from the directories of the same name"
    assert os.path.isfile(os.path.join(ROOT, "trtnet", "zoo.py")), "trtnet.zoo is the registry module"


def test_import_and_help_load_neither_torch_nor_tensorrt():
    code = "import sys, trtnet; print(sorted(m for m in ('torch', 'torchvision', 'tensorrt', 'tensorrt_rtx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", sorted(os.path.basename(os.path.dirname(p)) for p in
                                           glob.glob(os.path.join(ROOT, "trtnet", "*", "__main__.py"))))
def test_every_commands_help_loads_neither_torch_nor_tensorrt(command):
    code = (f"import runpy, sys; sys.argv = ['trtnet.{command}', '--help']\n"
            f"try: runpy.run_module('trtnet.{command}', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print('LOADED', sorted(m for m in ('torch', 'tensorrt', 'tensorrt_rtx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout
    assert "usage:" in out and out.strip().endswith("LOADED []"), out[-300:]


def _run(*argv, cwd, env):
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert r.returncode == 0, f"{' '.join(argv)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.mark.slow
def test_wheel_installed_elsewhere_runs_the_quick_start(tmp_path):
    """The wheel holds everything the commands import: from a directory outside the checkout, with the installed
    copy first on the path (the editable install's finder comes last), the zoo imports, --help runs and a zoo
    model builds from exported weights and checks against PyTorch."""
    src, target, work = tmp_path / "src", tmp_path / "site", tmp_path / "work"
    for pkg in {p.split(".")[0] for p in _options()["packages"].split()}:   # a copy: the build writes beside it
        shutil.copytree(os.path.join(ROOT, pkg), src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    _run("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path / "dist"),
         str(src), cwd=work, env=env)
    wheel, = glob.glob(str(tmp_path / "dist" / "trtnet-*.whl"))
    _run("-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target), wheel, cwd=work, env=env)

    where = _run("-c", "import sys, trtnet.build.__main__, zoo.resnet, trtnet.zoo as z; "
                       "print(*(sys.modules[m].__file__ for m in ('trtnet', 'trtnet.build', 'zoo', 'zoo.resnet')), "
                       "len(z.names()))", cwd=work, env=env).split()
    assert all(p.startswith(str(target) + os.sep) for p in where[:4]), where
    assert where[4] == str(len(zoo.names())), "every model file of the zoo is installed"
    assert "usage: python -m trtnet.build" in _run("-m", "trtnet.build", "--help", cwd=work, env=env)
    _run("-c", "from trtnet import harness, save_wts; "
               "save_wts(harness.export_state('squeezenet1_1'), 'weights/squeezenet1_1.wts')", cwd=work, env=env)
    out = _run("-m", "trtnet.build", "squeezenet1_1", "--batch", "1,1,2", cwd=work, env=env)
    assert any(line.split()[:1] == ["check"] for line in out.splitlines()), f"compared with PyTorch:\n{out}"
    assert os.path.getsize(work / "engines" / "squeezenet1_1.engine") > 4 * 1.2e6, "the plan holds fp32 weights"
