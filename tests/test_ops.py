"""Shape rules and the PyTorch reference executor, each op against torch.nn.functional run directly."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trtnet as tn
from trtnet.reference import run_reference

RTOL, ATOL = 1e-5, 1e-5  # fp32: the reference runs the same kernels, so only op-order rounding differs


def record(shape, fn, weights=None):
    """Record `fn(input)` on a one-input graph; returns (graph, output node)."""
    g = tn.Graph("t")
    y = fn(g.input("x", shape[1:]), tn.WeightMap(weights or {}))
    g.output(y)
    return g, y


def check(x, fn, expected_fn, weights=None):
    g, y = record(x.shape, fn, weights)
    got = run_reference(g, {"x": x})[y.name]
    want = expected_fn(torch.from_numpy(x)).numpy()
    assert g.concrete(y, {"N": x.shape[0]}) == want.shape, f"shape rule {y.shape} vs PyTorch {want.shape}"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("seed", range(8))
def test_conv_random(seed):
    r = np.random.default_rng(seed)
    c = int(r.choice([2, 4, 6]))
    groups = int(r.choice([1, 2, c]))
    out = groups * int(r.integers(1, 4))
    k, s, p, d = int(r.choice([1, 3, 5])), int(r.integers(1, 3)), int(r.integers(0, 3)), int(r.integers(1, 3))
    h, wd = int(r.integers(d * (k - 1) + 1, 20)), int(r.integers(d * (k - 1) + 1, 20))
    x = r.standard_normal((2, c, h, wd), dtype=np.float32)
    wt = {"c.weight": r.standard_normal((out, c // groups, k, k), dtype=np.float32)}
    if seed % 2:
        wt["c.bias"] = r.standard_normal(out, dtype=np.float32)
    b = torch.from_numpy(wt["c.bias"]) if seed % 2 else None
    check(x, lambda t, w: tn.conv(t, w["c"], stride=s, padding=p, dilation=d, groups=groups),
          lambda t: F.conv2d(t, torch.from_numpy(wt["c.weight"]), b, s, p, d, groups), wt)


def test_conv_flat_weights_need_sizes(rng):
    x = rng.standard_normal((1, 3, 8, 8), dtype=np.float32)
    wt = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    check(x, lambda t, w: tn.conv(t, w["c"], 4, 3, padding=1), lambda t: F.conv2d(t, torch.from_numpy(wt), padding=1),
          {"c.weight": wt.ravel()})
    with pytest.raises(tn.GraphError, match="pass out= and kernel="):
        record((1, 3, 8, 8), lambda t, w: tn.conv(t, w["c"]), {"c.weight": wt.ravel()})


@pytest.mark.parametrize("kind,k,s,p,ceil,cip,size", [
    ("max", 2, 2, 0, False, True, 8), ("max", 3, 2, 1, False, True, 9), ("max", 3, 2, 1, True, True, 10),
    ("max", 2, 2, 1, True, True, 5),  # PyTorch drops the last window that would start in the padding
    ("max", 3, 2, 0, True, True, 8), ("avg", 2, 2, 0, False, True, 8), ("avg", 3, 1, 1, False, True, 7),
    ("avg", 3, 1, 1, False, False, 7), ("avg", 3, 2, 1, True, False, 10), ("avg", 5, 3, 2, False, True, 11),
])
def test_pool(rng, kind, k, s, p, ceil, cip, size):
    x = rng.standard_normal((2, 3, size, size + 1), dtype=np.float32)
    if kind == "max":
        check(x, lambda t, w: tn.max_pool(t, k, s, p, ceil_mode=ceil), lambda t: F.max_pool2d(t, k, s, p, ceil_mode=ceil))
    else:
        check(x, lambda t, w: tn.avg_pool(t, k, s, p, ceil, cip),
              lambda t: F.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=cip))


@pytest.mark.parametrize("size", [1, 2, (2, 3), (4, 5), 7])
def test_adaptive_avg_pool(rng, size):
    x = rng.standard_normal((2, 4, 6, 6), dtype=np.float32)  # 4, 5 and 7 give uneven and overlapping windows
    check(x, lambda t, w: tn.adaptive_avg_pool(t, size), lambda t: F.adaptive_avg_pool2d(t, size))


ACTS = [
    (tn.relu, F.relu), (tn.sigmoid, torch.sigmoid), (tn.tanh, torch.tanh),
    (lambda t: tn.leaky_relu(t, 0.2), lambda t: F.leaky_relu(t, 0.2)), (tn.silu, F.silu), (tn.gelu, F.gelu),
    (lambda t: tn.gelu(t, "tanh"), lambda t: F.gelu(t, approximate="tanh")), (tn.hardswish, F.hardswish),
    (tn.hardsigmoid, F.hardsigmoid), (tn.relu6, F.relu6), (lambda t: tn.clip(t, -0.5, 1.5), lambda t: t.clamp(-0.5, 1.5)),
]


@pytest.mark.parametrize("ours,theirs", ACTS)
def test_activations(rng, ours, theirs):
    x = rng.standard_normal((2, 3, 5, 5), dtype=np.float32) * 4
    check(x, lambda t, w: ours(t), theirs)


@pytest.mark.parametrize("shape", [(4, 7), (2, 5, 7)])
def test_fc(rng, shape):
    x = rng.standard_normal(shape, dtype=np.float32)
    wt, b = rng.standard_normal((3, 7), dtype=np.float32), rng.standard_normal(3, dtype=np.float32)
    check(x, lambda t, w: tn.fc(t, w["l"]), lambda t: F.linear(t, torch.from_numpy(wt), torch.from_numpy(b)),
          {"l.weight": wt, "l.bias": b})


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
def test_softmax(rng, axis):
    x = rng.standard_normal((2, 3, 4, 5), dtype=np.float32)
    check(x, lambda t, w: tn.softmax(t, axis), lambda t: F.softmax(t, dim=axis))


def test_bn(rng):
    x = rng.standard_normal((2, 4, 3, 3), dtype=np.float32)
    p = {f"b.{k}": rng.random(4, dtype=np.float32) + 0.5 for k in ("weight", "bias", "running_mean", "running_var")}
    t = {k.split(".")[1]: torch.from_numpy(v) for k, v in p.items()}
    check(x, lambda s, w: tn.bn(s, w["b"], eps=1e-3),
          lambda s: F.batch_norm(s, t["running_mean"], t["running_var"], t["weight"], t["bias"], False, 0, 1e-3), p)


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_elementwise_broadcast(rng, op):
    x = rng.standard_normal((2, 4, 3, 3), dtype=np.float32)
    f = {"add": torch.add, "sub": torch.sub, "mul": torch.mul}[op]
    ops = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}[op]
    # x op global-pooled x: (N,C,H,W) with (N,C,1,1); then with a Python scalar on each side
    check(x, lambda t, w: ops(ops(t, tn.global_avg_pool(t)), 0.5),
          lambda t: f(f(t, t.mean((2, 3), keepdim=True)), 0.5))
    check(x, lambda t, w: ops(2.0, t), lambda t: f(torch.tensor(2.0), t))


@pytest.mark.parametrize("axis", [1, 3, -1])
def test_concat(rng, axis):
    x = rng.standard_normal((2, 3, 4, 4), dtype=np.float32)
    check(x, lambda t, w: tn.concat([t, tn.relu(t), t * 2.0], axis), lambda t: torch.cat([t, F.relu(t), t * 2], axis))


def test_flatten_reshape(rng):
    x = rng.standard_normal((2, 3, 4, 4), dtype=np.float32)
    check(x, lambda t, w: tn.flatten(t, 1), lambda t: torch.flatten(t, 1))
    check(x, lambda t, w: tn.flatten(t, 2), lambda t: torch.flatten(t, 2))
    check(x, lambda t, w: tn.reshape(t, (t.shape[0], 4, -1)), lambda t: t.reshape(2, 4, -1))


@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(scale_factor=3, mode="bilinear"),
                                dict(scale_factor=2, mode="bilinear", align_corners=True), dict(size=(7, 9)),
                                dict(size=(7, 9), mode="bilinear"), dict(size=(16, 11), mode="bilinear", align_corners=True)])
def test_upsample(rng, kw):
    x = rng.standard_normal((2, 3, 5, 6), dtype=np.float32)
    check(x, lambda t, w: tn.upsample(t, **kw), lambda t: F.interpolate(t, **kw))


def test_identity(rng):
    x = rng.standard_normal((2, 3), dtype=np.float32)
    check(x, lambda t, w: tn.dropout(t), lambda t: F.dropout(t, training=False))


# --- mistakes: one-line errors at the user's line, naming layer, weight and shapes ---

def test_conv_channel_mismatch_names_everything():
    wt = {"features.0.weight": np.zeros((16, 6, 5, 5), np.float32)}
    with pytest.raises(tn.GraphError) as e:
        record((1, 3, 32, 32), lambda t, w: tn.conv(t, w["features.0"]), wt)
    msg = str(e.value)
    assert "test_ops.py:" in msg and "'features.0'" in msg and "features.0.weight" in msg
    assert "(16, 6, 5, 5)" in msg and "(16, 3, 5, 5)" in msg and "\n" not in msg


def test_kernel_larger_than_input():
    with pytest.raises(tn.GraphError, match=r"kernel \(5, 5\) .* larger than the padded input \(3, 3\)"):
        record((1, 1, 3, 3), lambda t, w: tn.conv(t, w["c"]), {"c.weight": np.zeros((2, 1, 5, 5), np.float32)})
    with pytest.raises(tn.GraphError, match="larger than the padded input"):
        record((1, 1, 3, 3), lambda t, w: tn.max_pool(t, 4))


def test_missing_weight_lists_close_names():
    with pytest.raises(tn.GraphError, match=r"'conv1'.*no tensor.*conv1\.weight.*closest") as e:
        record((1, 1, 8, 8), lambda t, w: tn.conv(t, w["conv1"], 2, 3), {"conv1.wieght": np.zeros(18, np.float32)})
    assert "conv1.wieght" in str(e.value)


def test_flat_weight_with_wrong_count():
    with pytest.raises(tn.GraphError, match=r"'c.weight' has shape \(17,\).*expected \(2, 1, 3, 3\)"):
        record((1, 1, 8, 8), lambda t, w: tn.conv(t, w["c"], 2, 3), {"c.weight": np.zeros(17, np.float32)})


def test_fc_feature_mismatch():
    with pytest.raises(tn.GraphError, match=r"'fc\.weight' has shape \(10, 8\).*expected \(10, 7\)"):
        record((1, 7), lambda t, w: tn.fc(t, w["fc"]), {"fc.weight": np.zeros((10, 8), np.float32)})


def test_shape_errors():
    with pytest.raises(tn.GraphError, match="do not broadcast"):
        record((1, 3, 4, 4), lambda t, w: t + tn.max_pool(t, 2))
    with pytest.raises(tn.GraphError, match="outside dim 1"):
        record((1, 3, 4, 4), lambda t, w: tn.concat([t, tn.max_pool(t, 2)], 1))
    with pytest.raises(tn.GraphError, match="cannot reshape"):
        record((1, 3, 4, 4), lambda t, w: tn.reshape(t, (t.shape[0], 5, -1)))
    with pytest.raises(tn.GraphError, match="1 to 3 spatial dims"):
        record((1, 3), lambda t, w: tn.max_pool(t, 2))
    with pytest.raises(tn.GraphError, match="dim 4 is out of range"):
        record((1, 3, 4, 4), lambda t, w: tn.softmax(t, 4))


def test_print_graph_table():
    g, _ = record((1, 1, 8, 8), lambda t, w: tn.relu(tn.conv(t, w["conv1"])),
                  {"conv1.weight": np.zeros((4, 1, 3, 3), np.float32), "conv1.bias": np.zeros(4, np.float32)})
    text = str(g)
    assert "conv1" in text and "(N, 4, 6, 6)" in text and "40" in text and "relu" in text


def test_permute_slice_select_chunk(rng):
    x = rng.standard_normal((2, 6, 4, 5), dtype=np.float32)
    check(x, lambda t, w: tn.permute(t, (0, 2, 3, 1)), lambda t: t.permute(0, 2, 3, 1))
    check(x, lambda t, w: t[:, 1:6:2], lambda t: t[:, 1:6:2])
    check(x, lambda t, w: t[..., -3:], lambda t: t[..., -3:])
    check(x, lambda t, w: tn.select(t, 2, -1), lambda t: t[:, :, -1])
    check(x, lambda t, w: tn.concat(tn.chunk(t, 3, 1)[::-1], 1), lambda t: torch.cat(t.chunk(3, 1)[::-1], 1))
    with pytest.raises(tn.GraphError, match="must be a permutation"):
        record(x.shape, lambda t, w: tn.permute(t, (1, 0, 2)))
    with pytest.raises(tn.GraphError, match="step -1 must be positive"):
        record(x.shape, lambda t, w: t[:, ::-1])
    with pytest.raises(tn.GraphError, match="index 6 is out of range"):
        record(x.shape, lambda t, w: t[:, 6])


def test_matmul(rng):
    x = rng.standard_normal((2, 3, 4, 5), dtype=np.float32)
    check(x, lambda t, w: t @ t.transpose(-1, -2), lambda t: t @ t.transpose(-1, -2))
    check(x, lambda t, w: tn.matmul(tn.permute(t, (0, 1, 3, 2)), t), lambda t: t.transpose(-1, -2) @ t)
    with pytest.raises(tn.GraphError, match="inner dimensions differ"):
        record(x.shape, lambda t, w: tn.matmul(t, t))


@pytest.mark.parametrize("axis", [-1, 1])
def test_layer_norm(rng, axis):
    x = rng.standard_normal((2, 6, 4, 5), dtype=np.float32) * 3 + 1
    c = x.shape[axis]
    p = {"ln.weight": rng.standard_normal(c, dtype=np.float32), "ln.bias": rng.standard_normal(c, dtype=np.float32)}
    W, B = torch.from_numpy(p["ln.weight"]), torch.from_numpy(p["ln.bias"])
    expected = (lambda t: F.layer_norm(t, (c,), W, B, 1e-6)) if axis == -1 else \
        (lambda t: F.layer_norm(t.permute(0, 2, 3, 1), (c,), W, B, 1e-6).permute(0, 3, 1, 2))
    check(x, lambda t, w: tn.layer_norm(t, w["ln"], 1e-6, axis), expected, p)


def test_constant_and_expand(rng):
    x = rng.standard_normal((3, 4, 8), dtype=np.float32)
    cls, pos = rng.standard_normal((1, 1, 8), dtype=np.float32), rng.standard_normal((1, 5, 8), dtype=np.float32)
    p = {"class_token": cls, "pos": pos}
    check(x, lambda t, w: tn.concat([tn.expand(tn.constant(t, w, "class_token"), (t.shape[0], 1, 8)), t], 1) +
          tn.constant(t, w, "pos"),
          lambda t: torch.cat([torch.from_numpy(cls).expand(3, 1, 8), t], 1) + torch.from_numpy(pos), p)
    with pytest.raises(tn.GraphError, match="pass shape="):
        record(x.shape, lambda t, w: tn.constant(t, w, "missing"))


def test_dtype_errors_name_the_users_line():
    g = tn.Graph("t")
    ids = g.input("ids", ("N", "T"), "int32")
    with pytest.raises(tn.GraphError, match=r"test_ops\.py:\d+: layer 'softmax' \(softmax\): expects a floating-point"):
        tn.softmax(ids, 1)
    with pytest.raises(tn.GraphError, match=r"test_ops\.py:\d+: .*dtype 'complex64' is not one of"):
        ids.to("complex64")
    with pytest.raises(tn.GraphError, match=r"test_ops\.py:\d+: input 'x': dtype 'float64' is not one of"):
        g.input("x", (3,), "float64")


def test_symbolic_shapes_print_and_mismatch_on_static_dims():
    g = tn.Graph("t")
    x = g.input("images", ("N", 3, "H", "W"))
    y = tn.max_pool(x, 2)
    assert str(y.shape) == "(N, 3, H//2, W//2)" and "(N, 3, H//2, W//2)" in str(g)
    with pytest.raises(tn.GraphError, match=r"test_ops\.py:\d+: .*do not broadcast \(dimension 1: 3 vs 4\)"):
        x + tn.reshape(y, (y.shape[0], 4, -1, 1))


def test_tensor_methods_mirror_torch(rng):
    x = rng.standard_normal((2, 6, 4), dtype=np.float32)
    check(x, lambda t, w: t.max(-1, keepdim=True).values + t.min(-1, True).values + t.max(1).indices.float()[:, None],
          lambda t: t.max(-1, keepdim=True).values + t.min(-1, True).values + t.max(1).indices.float()[:, None])
    check(x, lambda t, w: t.relu().contiguous().view(t.size(0), -1).reshape(t.shape[0], 2, 12).permute(0, 2, 1),
          lambda t: t.relu().contiguous().view(t.size(0), -1).reshape(2, 2, 12).permute(0, 2, 1))
    check(x, lambda t, w: tn.cat(t.chunk(3, 1)[::-1] + t.split(2, 1), -1).transpose(1, 2).softmax(-1),
          lambda t: torch.cat(t.chunk(3, 1)[::-1] + t.split(2, 1), -1).transpose(1, 2).softmax(-1))
    check(x, lambda t, w: t.abs().sqrt().exp().mean(1, keepdim=True).sum(-1).unsqueeze(0).squeeze(0).flatten(),
          lambda t: t.abs().sqrt().exp().mean(1, keepdim=True).sum(-1).unsqueeze(0).squeeze(0).flatten())
    check(x, lambda t, w: t.masked_fill(t > 0, 1.5).long().int().to("float32").expand(3, 2, 6, 4).repeat(1, 1, 1, 2),
          lambda t: t.masked_fill(t > 0, 1.5).long().int().to(torch.float32).expand(3, 2, 6, 4).repeat(1, 1, 1, 2))
    check(x, lambda t, w: t.sort(1, descending=True).values[:, :2] * t.dim() + t[0].numel() + t.cumprod(2).clone()[:, 2:4],
          lambda t: t.sort(1, descending=True).values[:, :2] * t.dim() + t[0].numel() + t.cumprod(2).clone()[:, 2:4])


def test_data_dependent_sizes_are_refused_at_the_users_line():
    g = tn.Graph("t")
    x = g.input("x", ("N", 4))
    with pytest.raises(tn.GraphError, match=r"test_ops\.py:\d+: .*depends on the data.*nonzero_static"):
        tn.nonzero(x)
    with pytest.raises(tn.GraphError, match=r"test_ops\.py:\d+: .*x\[mask\] with the run-time mask .*data-dependent"):
        x[x > 0]
    with pytest.raises(tn.GraphError, match="bool mask cannot be combined"):
        x[tn.tensor([True, False], x), tn.argmax(x, 1)]
    ids = tn.argmax(x, 1)
    with pytest.raises(tn.GraphError, match="accumulate=True has no TensorRT form"):
        tn.index_put(x, (ids,), 1.0, accumulate=True)
    with pytest.raises(tn.GraphError, match="reduce='add' has no TensorRT form"):
        tn.scatter(x, 1, tn.unsqueeze(ids, 1), 1.0, reduce="add")


def test_einsum_refuses_what_tensorrt_cannot_do():
    g = tn.Graph("t")
    a, b = g.input("a", (3, 3)), g.input("b", (4, 5))
    for eq, msg in (("...i...->i", "at most one '...'"), ("...ijkl->i", "'...' does not fit"),
                    ("nii->n", "repeats a subscript"), ("nij,njk->nik", "sizes 3 and 4"),
                    ("nij->nx", "distinct letters of the inputs"), ("nij", "2 comma-separated terms")):
        with pytest.raises(tn.GraphError, match=msg):
            tn.einsum(eq, a, b) if eq.count(",") or eq == "nij" else tn.einsum(eq, a)


def test_grid_sample_refuses_what_tensorrt_cannot_do():
    g = tn.Graph("t")
    x, x5 = g.input("x", (3, 5, 6)), g.input("v", (2, 3, 4, 5))
    grid, grid5 = g.input("grid", (4, 4, 2)), g.input("grid5", (2, 3, 4, 3))
    for call, msg in ((lambda: tn.grid_sample(x, grid, "bicubic", "circular"), r"padding_mode must be one of 'zeros', "
                       r"'border', 'reflection', got 'circular'"),
                      (lambda: tn.grid_sample(x5, grid5, "bicubic"), r"mode must be one of 'bilinear', 'nearest' for a "
                       r"5-D input, got 'bicubic'"),
                      (lambda: tn.grid_sample(x, grid5), r"grid must be a tensor \(N, out, out, 2\) for input "
                       r"\(N, 3, 5, 6\), got 'grid5' of shape \(N, 2, 3, 4, 3\)"),
                      (lambda: tn.grid_sample(x, tn.cast(grid, "float16")),
                       "grid 'cast' is float16; expected the input's float32"),
                      (lambda: tn.grid_sample(tn.cast(x, "int32"), grid), "expects a floating-point input")):
        with pytest.raises(tn.GraphError, match=r"test_ops\.py:\d+: layer 'grid_sample' \(grid_sample\): " + msg):
            call()
