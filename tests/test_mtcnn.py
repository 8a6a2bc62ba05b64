"""MTCNN with facenet-pytorch's trained weights: each network's TensorRT network against facenet's module, and the
whole detector against facenet-pytorch's MTCNN.detect on bundled images."""
import importlib
import os

import numpy as np
import pytest

pytest.importorskip("facenet_pytorch")
skimage = pytest.importorskip("skimage")
from PIL import Image  # noqa: E402

from trtnet import harness, zoo  # noqa: E402
from trtnet.harness import run_module, torch_reference  # noqa: E402
from trtnet.check.report import check_graph  # noqa: E402
from trtnet.weights import WeightMap  # noqa: E402

importlib.import_module("zoo.mtcnn")
DATA = os.path.join(os.path.dirname(skimage.__file__), "data")


def bundled(name):
    return Image.open(os.path.join(DATA, name)).convert("RGB")


def collage():
    """Four astronaut faces at three sizes, one mirrored: a picture with several faces."""
    ast = bundled("astronaut.png")
    half = ast.resize((256, 256), Image.BILINEAR)
    out = Image.new("RGB", (512, 512))
    out.paste(half, (0, 0))
    out.paste(half.transpose(Image.FLIP_LEFT_RIGHT), (256, 0))
    out.paste(ast.resize((192, 192), Image.BILINEAR), (32, 288))
    out.paste(ast.crop((150, 30, 300, 200)), (300, 300))
    return out


@pytest.mark.parametrize("name,shape", [("mtcnn_pnet", (3, 12, 12)), ("mtcnn_pnet", (3, 37, 50)),
                                        ("mtcnn_rnet", None), ("mtcnn_onet", None)])
def test_network_matches_facenet(name, shape):
    spec = zoo.get(name)
    w = WeightMap(harness.export_state(name))
    graph = spec.graph(w, spec.input_shape)
    assert w.unused() == []
    x = np.random.default_rng(0).standard_normal((3, *(shape or spec.input_shape)), dtype=np.float32)
    expected = run_module(torch_reference(spec, w), graph, {"images": x})
    assert set(expected) == {o.name for o in graph.outputs}
    report = check_graph(graph, {"images": x}, expected, 1e-5)
    assert report.ok, report.summary() + "\n" + report.table()


@pytest.fixture(scope="module")
def nets():
    from trtnet.examples.mtcnn import Nets
    return Nets()


@pytest.mark.parametrize("image,faces", [("astronaut.png", 1), ("coffee.png", 0), ("collage", 4)])
def test_detector_matches_facenet(nets, image, faces):
    from facenet_pytorch import MTCNN
    from trtnet.examples.mtcnn import detect
    img = collage() if image == "collage" else bundled(image)
    boxes, probs, points = detect(nets, img)
    ref_boxes, ref_probs, ref_points = MTCNN(keep_all=True, device="cpu").detect(img, landmarks=True)
    assert len(boxes) == faces == (0 if ref_boxes is None else len(ref_boxes))
    if faces:
        assert np.abs(boxes - ref_boxes).max() < 1 and np.abs(points - ref_points).max() < 1
        assert np.abs(probs - ref_probs.astype(np.float64)).max() < 1e-4
        assert probs.min() > 0.99
    if image == "astronaut.png":
        np.testing.assert_allclose(boxes[0], [181.1, 62.2, 267.7, 172.1], atol=0.1)


def test_command_line_draws(tmp_path, capsys):
    from trtnet.examples.mtcnn import main
    src, out = tmp_path / "collage.png", tmp_path / "out.png"
    collage().save(src)
    main([str(src), "-o", str(out)])
    text = capsys.readouterr().out
    assert "4 faces" in text
    assert "interpreter" in text or "TensorRT engine" in text
    assert Image.open(out).size == (512, 512)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"])
def test_engine_builds(name):
    from trtnet.engine import build_engine
    graph = zoo.get(name).graph(WeightMap(harness.export_state(name)))
    plan, info = build_engine(graph, progress=False)
    assert len(plan) > 0 and info.layers > 10
