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
from trtnet.examples.mtcnn import CALIBRATION, collage, detect  # noqa: E402

importlib.import_module("zoo.mtcnn")
DATA = os.path.join(os.path.dirname(skimage.__file__), "data")


def bundled(name):
    return Image.open(os.path.join(DATA, name)).convert("RGB")


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
    img = picture(image.removesuffix(".png"))
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
    picture("collage").save(src)
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


def picture(name):
    """A bundled picture, or the collage (skipped where a package it takes a face from is missing)."""
    if name != "collage":
        return bundled(f"{name}.png")
    try:
        return collage()
    except ImportError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def quantized():
    """{precision: the three networks quantized}, calibrated once per precision."""
    from trtnet.examples.mtcnn import Nets
    made = {}

    def get(precision):
        if precision not in made:
            made[precision] = Nets(precision)
        return made[precision]
    return get


def moved(want, got):
    """How far the faces of `got` lie from those of `want` ((boxes, landmarks) each), the nearest box matched to
    each face, each used once: (largest box coordinate change, largest landmark change) in pixels; infinite when
    the faces do not pair up."""
    (b, p), (bq, pq) = want, got
    k = [int(np.abs(bq - x).max(1).argmin()) for x in b] if len(bq) else []
    if len(bq) != len(b) or len(set(k)) != len(k):
        return np.inf, np.inf
    return float(np.abs(bq[k] - b).max(initial=0)), float(np.abs(pq[k] - p).max(initial=0))


def noisy(image, amplitude, seed):
    """The picture with seeded uniform noise of +-amplitude grey levels, rounded back to 8 bits."""
    x = np.asarray(image, np.float64)
    x = x + np.random.default_rng(seed).uniform(-amplitude, amplitude, x.shape)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_fp32_collage_hinges_on_near_ties(nets):
    """Why the quantized collage misses: fp32 itself, given the picture with 2 grey levels of seeded noise (what
    the quantized networks' error amounts to, below), keeps astronaut's face within 2 px in every seed but misses
    its own collage faces (a face more or fewer, or a box or landmark moved over 2 px) in most."""
    missed = {}
    for name in ("astronaut", "collage"):
        image = picture(name)
        b, _, p = detect(nets, image)
        missed[name] = sum(max(moved((b, p), detect(nets, noisy(image, 2, seed))[::2])) > 2 for seed in range(10))
    print(f"mtcnn fp32 with 2 grey levels of noise, seeds of 10 missing its own faces: {missed}")
    assert missed["astronaut"] == 0 and missed["collage"] >= 5, missed


def worst_sqnr(graph, inputs, want):
    """The lowest of the outputs' signal-to-noise ratios (dB) against `want`, each output on its own scale."""
    from trtnet.reference import run_reference
    got = run_reference(graph, {"images": inputs})
    return min(10 * np.log10(np.sum(want[k].astype(np.float64) ** 2) /
                             np.sum((got[k] - want[k].astype(np.float64)) ** 2)) for k in want)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_quantized_networks_err_more_than_a_grey_level(quantized, precision):
    """Each quantized network's worst output, on its calibration inputs, is further from fp32 than fp32's own
    with 1 grey level of uniform noise on its input, which already moves the collage's faces (above)."""
    import torch
    from trtnet.examples.mtcnn import NETS, calibration_data, skimage_images
    from trtnet.reference import run_reference
    from facenet_pytorch.models import mtcnn
    from trtnet.examples.mtcnn import KEEP
    data, nets = calibration_data(skimage_images(CALIBRATION)), quantized(precision)
    weighted = [sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in getattr(mtcnn, c)().modules())
                for c in ("PNet", "RNet", "ONet")]
    assert nets.quantized() == ", ".join(f"{k} {n - len(KEEP.get(precision, ()))} of {n}"
                                         for k, n in zip(NETS, weighted))
    for k in NETS:
        fp32, x = zoo.get(f"mtcnn_{k}").graph(WeightMap(harness.export_state(f"mtcnn_{k}"))), data[k]
        want = run_reference(fp32, {"images": x})
        grey = x + np.random.default_rng(0).uniform(-1, 1, x.shape).astype(np.float32) / 128
        q, n = worst_sqnr(getattr(nets, k).graph, x, want), worst_sqnr(fp32, grey, want)
        print(f"mtcnn {precision} {k}: worst output {q:.1f} dB, fp32 with 1 grey level of noise {n:.1f} dB")
        assert q < n, (k, q, n)


# MTCNN's final box for a face is the best-scoring of several O-Net candidates whose regressed boxes lie up to
# 6.6 px apart with scores within 1e-3 of each other: fp32 itself misses the collage under 1-2 grey levels of
# noise, less than the quantized networks' error (the two tests above)
NEAR_TIES = pytest.mark.xfail(strict=True, reason="near-tied O-Net candidates: INT8 moves a box by 10.9 px, FP8 "
                              "adds a fifth face (0.76, threshold 0.7); docs/quantization.md")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "fp8"])
@pytest.mark.parametrize("name,faces", [("astronaut", 1), ("coffee", 0),
                                        pytest.param("collage", 4, marks=NEAR_TIES)])
def test_quantized_finds_the_faces_fp32_finds(nets, quantized, precision, name, faces):
    """facenet-pytorch's weights in INT8 and FP8, calibrated on other scikit-image pictures and its LFW faces, on
    pictures calibration never saw: the faces fp32 finds, boxes and landmarks within 2 px."""
    assert f"{name}.png" not in CALIBRATION
    image = picture(name)
    (b32, _, p32), (bq, _, pq) = detect(nets, image), detect(quantized(precision), image)
    assert len(b32) == faces
    assert len(bq) == len(b32), (b32, bq)
    box, marks = moved((b32, p32), (bq, pq))
    print(f"mtcnn {precision} {name}: {len(bq)} faces, boxes within {box:.2f} px, landmarks within {marks:.2f} px")
    assert box <= 2 and marks <= 2, (b32, bq, p32, pq)
