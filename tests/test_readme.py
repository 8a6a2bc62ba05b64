"""The README's Python examples run as written, and its op list is the declared public API."""
import os
import re

import pytest

import trtnet

README = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_op_list_matches_the_declared_ops():
    listed = re.search(r"<!-- ops -->(.*?)<!-- /ops -->", README, re.S).group(1)
    assert re.findall(r"`(\w+)`", listed) == trtnet.ops.__all__


@pytest.mark.parametrize("i", [i for i, b in enumerate(BLOCKS) if "\n    ...\n" not in b])   # all but elided excerpts
def test_python_example_runs(i, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "weights/lenet.wts" in BLOCKS[i]:
        from trtnet import zoo
        os.makedirs("weights")
        module = zoo.get("lenet").torch_module()
        trtnet.save_wts({k: v.numpy() for k, v in module.state_dict().items()}, "weights/lenet.wts")
    exec(compile(BLOCKS[i], f"README.md block {i}", "exec"), {})
    out = capsys.readouterr().out
    assert "FAIL" not in out
