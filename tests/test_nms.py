"""tn.nms: TensorRT's INMSLayer as the network holds it (read back), its build on this TensorRT, and its rows
against torchvision's batched_nms through the interpreter."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import trtnet as tn
from trtnet.check.interp import run_network
from trtnet.engine import build_engine, create_network

from cases_tensor import detections, torchvision_nms


def graph(box_coding="corners"):
    g = tn.Graph("nms")
    boxes, scores = g.input("boxes", (2, 16, 4), batch=False), g.input("scores", (2, 16, 3), batch=False)
    rows, count = tn.nms(boxes, scores, 8, 0.4, 0.5, box_coding=box_coding, topk_box_limit=100, name="nms")
    g.output(rows, "rows")
    g.output(count, "count")
    return g


def test_emitted_as_tensorrts_nms_layer():
    _, network, _ = create_network(graph("center"))
    layer = next(network.get_layer(i) for i in range(network.num_layers) if "NMS" in str(network.get_layer(i).type))
    trt = __import__(type(layer).__module__.split("_bindings")[0].split(".")[0])
    layer.__class__ = trt.INMSLayer
    assert layer.num_inputs == 5 and layer.topk_box_limit == 100
    assert layer.bounding_box_format == trt.BoundingBoxFormat.CENTER_SIZES
    assert tuple(layer.get_output(0).shape) == (-1, 3) and tuple(layer.get_output(1).shape) == ()
    rows = network.get_output(0)
    assert rows.name == "rows" and tuple(rows.shape) == (2 * 3 * 8, 3)


def test_build_is_tensorrts_to_refuse_or_make():
    """TensorRT for RTX has no NMS runner for any target (its own error); a full TensorRT builds the engine."""
    try:
        plan, _ = build_engine(graph(), None, progress=False)
    except Exception as e:  # noqa: BLE001 (the builder's refusal, in TensorRT's words)
        assert "NMS" in str(e) or "runner" in str(e), str(e)
        return
    assert plan


@pytest.mark.parametrize("box_coding", ["corners", "center"])
def test_interpreter_keeps_what_torchvision_keeps(box_coding):
    rng = np.random.default_rng(3)
    boxes, scores = detections("boxes", (2, 16, 4), "float32", rng), detections("scores", (2, 16, 3), "float32", rng)
    _, network, _ = create_network(graph(box_coding))
    got = run_network(network, {"boxes": boxes, "scores": scores})
    corners = torch.from_numpy(boxes)
    if box_coding == "center":      # the same boxes given as centres and sizes
        boxes = np.concatenate([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)
        got = run_network(network, {"boxes": boxes, "scores": scores})
    rows, count = torchvision_nms(corners, torch.from_numpy(scores), 8, 0.4, 0.5)
    assert 0 < int(count) < len(rows)          # some suppressed, some rows filled
    np.testing.assert_array_equal(got["rows"], rows.numpy())
    assert int(got["count"]) == int(count)


MODEL = '''
import trtnet as tn
from trtnet.zoo import register


@register("boxes", (16, 5), None)
def boxes(w, shape):
    g = tn.Graph("boxes")
    x = g.input("x", shape)
    rows, count = tn.nms(x[..., :4], tn.sigmoid(x[..., 4:]), 4, 0.5)
    g.output(rows, "rows")
    g.output(count, "count")
    return g
'''


def test_rtx_build_refusal_names_the_layer_and_leaves_no_engine(tmp_path):
    """The command line on a model file ending in tn.nms, batch and box count dynamic: with TensorRT for RTX, one
    error line naming the layer and its source line, exit 1, no engine; a full TensorRT builds it."""
    from trtnet import backend
    from safetensors.numpy import save_file
    (tmp_path / "boxes.py").write_text(MODEL)
    (tmp_path / "weights").mkdir()
    save_file({}, str(tmp_path / "weights" / "boxes.safetensors"))      # a network without weights
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "trtnet.build", "boxes.py", "--no-verify", "-o", "boxes.engine"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if not backend.is_rtx():
        assert r.returncode == 0 and (tmp_path / "boxes.engine").exists(), r.stderr
        return
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 1 and len(errors) == 1, r.stderr
    assert "builds no NMS layer: 'rows', tn.nms at boxes.py:10" in errors[0], errors[0]
    assert not (tmp_path / "boxes.engine").exists()
