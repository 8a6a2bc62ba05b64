"""What `pip install` puts into site-packages: every trtnet subpackage, the zoo as `trtnet.zoo`, no top-level `zoo`."""
import configparser
import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _options():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    return cfg["options"]


def test_every_subpackage_is_installed_and_the_zoo_lives_under_trtnet():
    opts = _options()
    listed = set(opts["packages"].split())
    found = {"trtnet"} | {os.path.dirname(p).replace(os.sep, ".") for p in
                          glob.glob("trtnet/**/__init__.py", root_dir=ROOT, recursive=True)}
    assert found | {"trtnet.zoo"} == listed
    assert "zoo" not in listed
    assert opts["package_dir"].split() == ["trtnet.zoo", "=", "zoo"]


def test_import_and_help_load_neither_torch_nor_tensorrt():
    code = "import sys, trtnet; print(sorted(m for m in ('torch', 'torchvision', 'tensorrt', 'tensorrt_rtx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"
