"""The CPU interpreter against PyTorch / numpy, layer type by layer type, then whole ONNX models.

Tolerances: float32 layers use rtol=1e-5 with atol=1e-5 scaled to the values' magnitude (FP32
below); whole networks compare the largest error with 1e-4 of the output's largest magnitude.
"""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from trtnet.backend import logger, trt
from trtnet.check import UnsupportedLayerError, run_network

t = trt()
FP32 = dict(rtol=1e-5, atol=1e-5)


class Net:
    """A strongly typed network plus the arrays its weights point into (kept alive with it)."""

    def __init__(self):
        self.builder = t.Builder(logger())
        self.net = self.builder.create_network(1 << int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        self.keep = []

    def input(self, shape, dtype=None, name="x"):
        return self.net.add_input(name, dtype or t.float32, shape)

    def w(self, a):
        a = np.require(a, requirements="C")
        self.keep.append(a)
        return t.Weights(a)

    def const(self, a):
        a = np.require(a, requirements="C")
        return self.net.add_constant(a.shape, self.w(a)).get_output(0)

    def run(self, feeds, *outs):
        for o in outs:
            self.net.mark_output(o)
        res = run_network(self.net, feeds)
        return [res[o.name] for o in outs] if len(outs) > 1 else res[outs[0].name]


def rand(*shape, seed=0, lo=-1.0, hi=1.0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


def close(got, want, tol=FP32):
    want = np.asarray(want)
    scale = max(float(np.abs(want).max()), 1.0) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale)
    assert got.shape == want.shape


def tt(a):
    return torch.from_numpy(np.asarray(a))


# --- convolution --------------------------------------------------------------------------

def conv_net(x, w, b, setup, groups=1):
    n = Net()
    inp = n.input(x.shape)
    layer = n.net.add_convolution_nd(inp, w.shape[0], w.shape[2:], n.w(w), n.w(b))
    layer.num_groups = groups
    setup(layer)
    return n.run({"x": x}, layer.get_output(0))


PM = t.PaddingMode


@pytest.mark.parametrize("case", [
    # (name, groups, stride, dilation, layer setup, torch padding (l, r, t, b) applied by hand)
    ("sym", 1, (1, 1), (1, 1), lambda L: setattr(L, "padding_nd", (1, 1)), (1, 1, 1, 1)),
    ("asym_groups_dil", 2, (2, 1), (2, 1),
     lambda L: (setattr(L, "pre_padding", (1, 0)), setattr(L, "post_padding", (2, 1))), (0, 1, 1, 2)),
    # EXPLICIT_ROUND_UP, I=9, k=3, s=2: O = ceil((9 - 3) / 2) + 1 = 4 -> no extra; W: I=8 -> O = ceil(5/2)+1 = 4,
    # last window reaches column 8: one zero column beyond the input.
    ("round_up", 1, (2, 2), (1, 1), lambda L: setattr(L, "padding_mode", PM.EXPLICIT_ROUND_UP), (0, 1, 0, 0)),
    # EXPLICIT_ROUND_DOWN with padding the last stride does not reach: W: I=8+2, k=3, s=2 -> O = 4, the
    # post-padding column unused; H: I=9+2 -> O = 5, both pads used.
    ("round_down_crop", 1, (2, 2), (1, 1), lambda L: setattr(L, "padding_nd", (1, 1)), (1, 0, 1, 1)),
    # SAME_UPPER, k=4, s=2: H=9 -> P = 4*2+4-9 = 3 -> (1, 2); W=8 -> P = 3*2+4-8 = 2 -> (1, 1)
    ("same_upper", 1, (2, 2), (1, 1), lambda L: setattr(L, "padding_mode", PM.SAME_UPPER), (1, 1, 1, 2)),
    ("same_lower", 1, (2, 2), (1, 1), lambda L: setattr(L, "padding_mode", PM.SAME_LOWER), (1, 1, 2, 1)),
], ids=lambda c: c[0])
def test_convolution(case):
    name, groups, stride, dilation, setup, pad = case
    k = 4 if name.startswith("same") else 3
    x, w, b = rand(2, 4, 9, 8), rand(6, 4 // groups, k, k, seed=1), rand(6, seed=2)

    def full(L):
        L.stride_nd, L.dilation_nd = stride, dilation
        setup(L)
    got = conv_net(x, w, b, full, groups)
    want = F.conv2d(F.pad(tt(x), pad), tt(w), tt(b), stride, 0, dilation, groups)
    close(got, want.numpy())


def test_convolution_kernel_and_bias_from_inputs_3d():
    """Kernel and bias given as tensors (inputs 1 and 2, as the ONNX parser emits), 3-D window."""
    x, w, b = rand(1, 2, 5, 6, 7), rand(3, 2, 3, 3, 3, seed=1), rand(3, seed=2)
    n = Net()
    layer = n.net.add_convolution_nd(n.input(x.shape), 3, (3, 3, 3), t.Weights(), t.Weights())
    layer.set_input(1, n.const(w))
    layer.set_input(2, n.const(b))
    layer.padding_nd = (1, 0, 1)
    got = n.run({"x": x}, layer.get_output(0))
    close(got, F.conv3d(tt(x), tt(w), tt(b), 1, (1, 0, 1)).numpy())


@pytest.mark.parametrize("mode,trim", [
    (None, (1, 2, 0, 1)),  # explicit pre (0, 1), post (1, 2): trims in F.pad order (l, r, t, b)
    (PM.SAME_UPPER, (0, 1, 0, 1)),  # P = max(3 - 2, 0) = 1 -> B = 0, A = 1
    (PM.SAME_LOWER, (1, 0, 1, 0)),
], ids=["explicit", "same_upper", "same_lower"])
def test_deconvolution(mode, trim):
    x, w, b = rand(2, 4, 5, 6), rand(4, 3, 3, 3, seed=1), rand(6, seed=2)  # CKRS, groups 2 -> K = 6
    n = Net()
    layer = n.net.add_deconvolution_nd(n.input(x.shape), 6, (3, 3), n.w(w), n.w(b))
    layer.num_groups, layer.stride_nd = 2, (2, 2)
    if mode is None:
        layer.pre_padding, layer.post_padding = (0, 1), (1, 2)
    else:
        layer.padding_mode = mode
    got = n.run({"x": x}, layer.get_output(0))
    full = F.conv_transpose2d(tt(x), tt(w), tt(b), 2, 0, 0, 2)
    close(got, F.pad(full, [-p for p in trim]).numpy())


# --- pooling ------------------------------------------------------------------------------

def ref_pool(x, k, s, pre, post, out, kind, exclude=True, blend=0.0):
    """Loop reference: windows start at o * s - pre; max ignores padding (-inf), average divides by
    the overlap with the input (exclude) or with the input padded by pre/post."""
    n, c, h, w = x.shape
    y = np.empty((n, c) + tuple(out), np.float32)
    for i in range(out[0]):
        for j in range(out[1]):
            r0, c0 = i * s[0] - pre[0], j * s[1] - pre[1]
            rows = [r for r in range(r0, r0 + k[0]) if 0 <= r < h]
            cols = [q for q in range(c0, c0 + k[1]) if 0 <= q < w]
            win = x[:, :, rows][:, :, :, cols]
            mx = win.max((2, 3)) if win.size else np.full((n, c), -np.inf)
            if exclude:
                cnt = len(rows) * len(cols)
            else:
                cnt = (len([r for r in range(r0, r0 + k[0]) if -pre[0] <= r < h + post[0]]) *
                       len([q for q in range(c0, c0 + k[1]) if -pre[1] <= q < w + post[1]]))
            avg = win.sum((2, 3)) / cnt
            y[:, :, i, j] = {"max": mx, "avg": avg, "blend": (1 - blend) * mx + blend * avg}[kind]
    return y


PT = t.PoolingType


def pool_net(x, kind, k, setup):
    n = Net()
    layer = n.net.add_pooling_nd(n.input(x.shape), kind, k)
    setup(layer)
    return n.run({"x": x}, layer.get_output(0)), layer


@pytest.mark.parametrize("exclude", [True, False])
def test_average_pool_padding_count(exclude):
    """Default average_count_excludes_padding=True equals PyTorch's count_include_pad=False."""
    x = rand(2, 3, 7, 6)

    def setup(L):
        L.padding_nd, L.stride_nd = (1, 1), (2, 2)
        if not exclude:
            L.average_count_excludes_padding = False
    got, layer = pool_net(x, PT.AVERAGE, (3, 3), setup)
    assert layer.average_count_excludes_padding == exclude
    close(got, F.avg_pool2d(tt(x), 3, 2, 1, count_include_pad=not exclude).numpy())


def test_max_pool_padding():
    x = rand(2, 3, 7, 6)
    got, _ = pool_net(x, PT.MAX, (3, 3), lambda L: (setattr(L, "padding_nd", (1, 1)), setattr(L, "stride_nd", (2, 2))))
    close(got, F.max_pool2d(tt(x), 3, 2, 1).numpy())


def test_pool_round_up_matches_ceil_mode_when_last_window_starts_inside():
    """I=6, k=3, s=2: O = ceil(3 / 2) + 1 = 3 = PyTorch ceil_mode; the last window is cut short."""
    x = rand(1, 2, 6, 6)
    setup = lambda L: (setattr(L, "stride_nd", (2, 2)), setattr(L, "padding_mode", PM.EXPLICIT_ROUND_UP))
    got_max, _ = pool_net(x, PT.MAX, (3, 3), setup)
    got_avg, _ = pool_net(x, PT.AVERAGE, (3, 3), setup)
    close(got_max, F.max_pool2d(tt(x), 3, 2, ceil_mode=True).numpy())
    close(got_avg, F.avg_pool2d(tt(x), 3, 2, ceil_mode=True, count_include_pad=False).numpy())


def test_pool_round_up_keeps_window_starting_in_padding():
    """I=5, k=2, s=2, padding 1: TensorRT gives O = ceil((7 - 2) / 2) + 1 = 4 where PyTorch's ceil_mode
    drops the last window (3); that window covers only padding, so max pooling yields -inf."""
    x = rand(1, 2, 5, 5)
    setup = lambda L: (setattr(L, "stride_nd", (2, 2)), setattr(L, "padding_nd", (1, 1)),
                       setattr(L, "padding_mode", PM.EXPLICIT_ROUND_UP))
    got, layer = pool_net(x, PT.MAX, (2, 2), setup)
    assert got.shape == (1, 2, 4, 4) and tuple(layer.get_output(0).shape) == (1, 2, 4, 4)
    assert F.max_pool2d(tt(x), 2, 2, 1, ceil_mode=True).shape[-1] == 3
    close(got[..., :3, :3], F.max_pool2d(tt(x), 2, 2, 1, ceil_mode=True).numpy())
    assert np.all(got[..., 3, :] == -np.inf) and np.all(got[..., :, 3] == -np.inf)


@pytest.mark.parametrize("mode,kind,exclude", [
    (PM.SAME_UPPER, "avg", True), (PM.SAME_LOWER, "avg", True), (PM.SAME_UPPER, "avg", False),
    (PM.SAME_LOWER, "max", True), (PM.EXPLICIT_ROUND_UP, "avg", False), (PM.EXPLICIT_ROUND_UP, "blend", True),
], ids=lambda v: getattr(v, "name", str(v)))
def test_pool_modes_against_loop_reference(mode, kind, exclude):
    x = rand(1, 2, 7, 8)
    k, s = (4, 3), (2, 3)
    if mode == PM.EXPLICIT_ROUND_UP:
        pre, post = (1, 2), (2, 0)
        out = [math.ceil((i + b + a - kk) / ss) + 1 for i, b, a, kk, ss in zip((7, 8), pre, post, k, s)]
    else:
        out = [math.ceil(i / ss) for i, ss in zip((7, 8), s)]
        pads = [(i - 1) // ss * ss + kk - i for i, kk, ss in zip((7, 8), k, s)]
        pre = tuple(p // 2 if mode == PM.SAME_UPPER else p - p // 2 for p in pads)
        post = tuple(p - b for p, b in zip(pads, pre))
    kind_enum = {"max": PT.MAX, "avg": PT.AVERAGE, "blend": PT.MAX_AVERAGE_BLEND}[kind]

    def setup(L):
        L.stride_nd, L.padding_mode, L.average_count_excludes_padding = s, mode, exclude
        L.blend_factor = 0.3
        if mode == PM.EXPLICIT_ROUND_UP:
            L.pre_padding, L.post_padding = pre, post
    got, _ = pool_net(x, kind_enum, k, setup)
    close(got, ref_pool(x, k, s, pre, post, out, kind, exclude, 0.3))


def test_pool_3d_over_trailing_dims():
    x = rand(2, 3, 4, 6, 5)
    got, _ = pool_net(x, PT.AVERAGE, (2, 3, 2), lambda L: setattr(L, "stride_nd", (2, 3, 2)))
    close(got, F.avg_pool3d(tt(x), (2, 3, 2)).numpy())


# --- pointwise ----------------------------------------------------------------------------

AT = t.ActivationType
ACTIVATIONS = [
    (AT.RELU, 0, 0, F.relu),
    (AT.SIGMOID, 0, 0, torch.sigmoid),
    (AT.TANH, 0, 0, torch.tanh),
    (AT.LEAKY_RELU, 0.1, 0, lambda x: F.leaky_relu(x, 0.1)),
    (AT.ELU, 0.7, 0, lambda x: F.elu(x, 0.7)),
    (AT.SELU, 1.6732632423543772, 1.0507009873554805, torch.selu),
    (AT.SOFTSIGN, 0, 0, F.softsign),
    (AT.SOFTPLUS, 1.5, 2.0, lambda x: 1.5 * 2.0 * F.softplus(x, beta=2.0, threshold=100)),
    (AT.CLIP, -0.5, 0.8, lambda x: F.hardtanh(x, -0.5, 0.8)),
    (AT.HARD_SIGMOID, 1 / 6, 0.5, F.hardsigmoid),
    (AT.SCALED_TANH, 1.7, 0.66, lambda x: 1.7 * torch.tanh(0.66 * x)),
    (AT.THRESHOLDED_RELU, 0.3, 0, lambda x: F.threshold(x, 0.3, 0.0)),
    (AT.GELU_ERF, 0, 0, F.gelu),
    (AT.GELU_TANH, 0, 0, lambda x: F.gelu(x, approximate="tanh")),
]


@pytest.mark.parametrize("kind,alpha,beta,ref", ACTIVATIONS, ids=[a[0].name for a in ACTIVATIONS])
def test_activation(kind, alpha, beta, ref):
    x = rand(2, 3, 5, 7, lo=-4, hi=4)
    n = Net()
    layer = n.net.add_activation(n.input(x.shape), kind)
    layer.alpha, layer.beta = alpha, beta
    close(n.run({"x": x}, layer.get_output(0)), ref(tt(x)).numpy())


def test_parametric_relu():
    x, slope = rand(2, 3, 4, 5), rand(1, 3, 1, 1, seed=1)
    n = Net()
    out = n.net.add_parametric_relu(n.input(x.shape), n.const(slope)).get_output(0)
    close(n.run({"x": x}, out), F.prelu(tt(x), tt(slope.reshape(3))).numpy())


SM = t.ScaleMode


@pytest.mark.parametrize("mode,axis", [(SM.UNIFORM, 1), (SM.CHANNEL, 1), (SM.CHANNEL, 2), (SM.ELEMENTWISE, 1),
                                       (SM.ELEMENTWISE, 2)], ids=lambda v: getattr(v, "name", f"axis{v}"))
def test_scale(mode, axis):
    """(x * scale + shift) ^ power with coefficients per tensor / per channel_axis / per element."""
    x = rand(2, 3, 4, 5, lo=0.5, hi=2.0)
    shape = {SM.UNIFORM: (1,), SM.CHANNEL: (x.shape[axis],), SM.ELEMENTWISE: x.shape[axis:]}[mode]
    scale, shift, power = rand(*shape, seed=1, lo=0.5, hi=1.5), rand(*shape, seed=2, lo=0, hi=1), \
        rand(*shape, seed=3, lo=0.5, hi=2)
    n = Net()
    layer = n.net.add_scale_nd(n.input(x.shape), mode, n.w(shift), n.w(scale), n.w(power), axis)
    got = n.run({"x": x}, layer.get_output(0))
    bshape = {SM.UNIFORM: (), SM.CHANNEL: shape + (1,) * (3 - axis), SM.ELEMENTWISE: shape}[mode]
    r = lambda a: a.reshape(bshape)
    close(got, (x * r(scale) + r(shift)) ** r(power))


def test_scale_empty_weights_are_identity_coefficients():
    x = rand(2, 3, 4, 5)
    shift = rand(3, seed=1)
    n = Net()
    layer = n.net.add_scale(n.input(x.shape), SM.CHANNEL, n.w(shift), t.Weights(), t.Weights())
    close(n.run({"x": x}, layer.get_output(0)), x + shift.reshape(3, 1, 1))


EW = t.ElementWiseOperation
FLOAT_BINARY = {
    EW.SUM: np.add, EW.PROD: np.multiply, EW.MAX: np.maximum, EW.MIN: np.minimum, EW.SUB: np.subtract,
    EW.DIV: np.divide, EW.POW: np.power, EW.FLOOR_DIV: lambda a, b: np.floor(a / b),
    EW.EQUAL: np.equal, EW.GREATER: np.greater, EW.LESS: np.less,
}


@pytest.mark.parametrize("op", list(FLOAT_BINARY), ids=lambda o: o.name)
def test_elementwise_float_broadcast(op):
    a = rand(2, 1, 4, 5, lo=0.5, hi=3)
    b = rand(1, 3, 4, 1, seed=1, lo=0.5, hi=3)
    b[0, 0, 0, 0] = a[0, 0, 0, 0]  # one equal pair for EQUAL
    n = Net()
    out = n.net.add_elementwise(n.input(a.shape, name="a"), n.input(b.shape, name="b"), op).get_output(0)
    got = n.run({"a": a, "b": b}, out)
    want = FLOAT_BINARY[op](a, b)
    if want.dtype == bool:
        np.testing.assert_array_equal(got, want)
    else:
        close(got, want)


def test_elementwise_integer_division_and_logic():
    """Integer DIV truncates toward zero, FLOOR_DIV floors; AND/OR/XOR on booleans."""
    a = np.array([[7, -7, 7, -7, 0]], np.int32)
    b = np.array([[2, 2, -2, -2, 3]], np.int32)
    n = Net()
    ia, ib = n.input(a.shape, t.int32, "a"), n.input(b.shape, t.int32, "b")
    div = n.net.add_elementwise(ia, ib, EW.DIV).get_output(0)
    fdiv = n.net.add_elementwise(ia, ib, EW.FLOOR_DIV).get_output(0)
    pa, pb = (n.net.add_elementwise(ia, n.const(np.zeros((1, 1), np.int32)), EW.GREATER).get_output(0),
              n.net.add_elementwise(ib, n.const(np.zeros((1, 1), np.int32)), EW.GREATER).get_output(0))
    logic = [n.net.add_elementwise(pa, pb, op).get_output(0) for op in (EW.AND, EW.OR, EW.XOR)]
    got = n.run({"a": a, "b": b}, div, fdiv, *logic)
    np.testing.assert_array_equal(got[0], [[3, -3, -3, 3, 0]])
    np.testing.assert_array_equal(got[1], a // b)
    assert got[0].dtype == np.int32
    for g, f in zip(got[2:], (np.logical_and, np.logical_or, np.logical_xor)):
        np.testing.assert_array_equal(g, f(a > 0, b > 0))


UO = t.UnaryOperation
erf = np.vectorize(math.erf)
UNARY = {
    UO.EXP: (np.exp, -2, 2), UO.LOG: (np.log, 0.1, 3), UO.SQRT: (np.sqrt, 0, 3), UO.RECIP: (np.reciprocal, 0.5, 3),
    UO.ABS: (np.abs, -2, 2), UO.NEG: (np.negative, -2, 2), UO.SIN: (np.sin, -3, 3), UO.COS: (np.cos, -3, 3),
    UO.TAN: (np.tan, -1, 1), UO.SINH: (np.sinh, -2, 2), UO.COSH: (np.cosh, -2, 2), UO.ASIN: (np.arcsin, -0.9, 0.9),
    UO.ACOS: (np.arccos, -0.9, 0.9), UO.ATAN: (np.arctan, -3, 3), UO.ASINH: (np.arcsinh, -3, 3),
    UO.ACOSH: (np.arccosh, 1.1, 3), UO.ATANH: (np.arctanh, -0.9, 0.9), UO.CEIL: (np.ceil, -3, 3),
    UO.FLOOR: (np.floor, -3, 3), UO.ERF: (erf, -2, 2), UO.SIGN: (np.sign, -2, 2),
}


@pytest.mark.parametrize("op", list(UNARY), ids=lambda o: o.name)
def test_unary(op):
    ref, lo, hi = UNARY[op]
    x = rand(3, 4, 5, lo=lo, hi=hi)
    x[0, 0, :2] = 0.0 if lo <= 0 <= hi else x[0, 0, :2]
    n = Net()
    close(n.run({"x": x}, n.net.add_unary(n.input(x.shape), op).get_output(0)), ref(x).astype(np.float32))


def test_unary_round_not_isinf_isnan():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, np.inf, -np.inf, np.nan], np.float32)
    n = Net()
    inp = n.input(x.shape)
    rnd, isinf, isnan = (n.net.add_unary(inp, op).get_output(0) for op in (UO.ROUND, UO.ISINF, UO.ISNAN))
    no = n.net.add_unary(isinf, UO.NOT).get_output(0)
    got = n.run({"x": x}, rnd, isinf, isnan, no)
    np.testing.assert_array_equal(got[0], np.round(x))  # half to even
    np.testing.assert_array_equal(got[1], np.isinf(x))
    np.testing.assert_array_equal(got[2], np.isnan(x))
    np.testing.assert_array_equal(got[3], ~np.isinf(x))


def test_cast_identity_select():
    x = np.array([[1.7, -1.7, 0.0, 2.5]], np.float32)
    n = Net()
    inp = n.input(x.shape)
    to_int = n.net.add_cast(inp, t.int32).get_output(0)
    to_bool = n.net.add_cast(inp, t.bool).get_output(0)
    to_half = n.net.add_cast(inp, t.float16).get_output(0)
    same = n.net.add_identity(inp).get_output(0)
    sel = n.net.add_select(to_bool, inp, n.const(np.full((1, 1), 9.0, np.float32))).get_output(0)
    got = n.run({"x": x}, to_int, to_bool, to_half, same, sel)
    np.testing.assert_array_equal(got[0], [[1, -1, 0, 2]])  # truncation, as the Cast operator example shows
    np.testing.assert_array_equal(got[1], x != 0)
    assert got[2].dtype == np.float16 and np.array_equal(got[2], x.astype(np.float16))
    np.testing.assert_array_equal(got[3], x)
    np.testing.assert_array_equal(got[4], np.where(x != 0, x, 9.0))


# --- matrix multiply ----------------------------------------------------------------------

MO = t.MatrixOperation


@pytest.mark.parametrize("shapes,ops,ref", [
    (((2, 1, 3, 4), (1, 5, 4, 6)), (MO.NONE, MO.NONE), lambda a, b: a @ b),
    (((2, 4, 3), (2, 6, 4)), (MO.TRANSPOSE, MO.TRANSPOSE), lambda a, b: a.swapaxes(1, 2) @ b.swapaxes(1, 2)),
    (((3, 4), (5, 4)), (MO.NONE, MO.TRANSPOSE), lambda a, b: a @ b.T),
    (((2, 4), (2, 4, 6)), (MO.VECTOR, MO.NONE), lambda a, b: np.einsum("bk,bkn->bn", a, b)),
    (((2, 3, 4), (2, 4)), (MO.NONE, MO.VECTOR), lambda a, b: np.einsum("bmk,bk->bm", a, b)),
    (((3, 4), (1, 4)), (MO.VECTOR, MO.VECTOR), lambda a, b: (a * b).sum(-1)),
    (((2, 6, 4), (2, 6)), (MO.TRANSPOSE, MO.VECTOR), lambda a, b: np.einsum("bkm,bk->bm", a, b)),
], ids=["batch_broadcast", "both_transposed", "linear", "vec_mat", "mat_vec", "vec_vec", "transposed_vec"])
def test_matrix_multiply(shapes, ops, ref):
    a, b = rand(*shapes[0]), rand(*shapes[1], seed=1)
    n = Net()
    out = n.net.add_matrix_multiply(n.input(a.shape, name="a"), ops[0], n.input(b.shape, name="b"), ops[1])
    close(n.run({"a": a, "b": b}, out.get_output(0)), ref(a, b))


def test_einsum():
    a, b = rand(2, 3, 4), rand(2, 4, 5, seed=1)
    n = Net()
    out = n.net.add_einsum([n.input(a.shape, name="a"), n.input(b.shape, name="b")], "bij,bjk->bik").get_output(0)
    close(n.run({"a": a, "b": b}, out), a @ b)


# --- shape manipulation -------------------------------------------------------------------

def test_shuffle_transposes_and_placeholder_reshape():
    """first_transpose, reshape with 0 (copy from the transposed input) and -1, second_transpose."""
    x = rand(2, 3, 4, 5)
    n = Net()
    layer = n.net.add_shuffle(n.input(x.shape))
    layer.first_transpose = (0, 2, 3, 1)   # -> (2, 4, 5, 3)
    layer.reshape_dims = (0, -1, 3)        # -> (2, 20, 3)
    layer.second_transpose = (2, 0, 1)     # -> (3, 2, 20)
    got = n.run({"x": x}, layer.get_output(0))
    close(got, x.transpose(0, 2, 3, 1).reshape(2, 20, 3).transpose(2, 0, 1))


def test_shuffle_zero_is_literal_when_not_placeholder():
    """(2, 0) -> reshape (0, 4): a zero-length dim when literal, a copy of the 2 when a placeholder."""
    x = np.zeros((2, 0), np.float32)
    n = Net()
    inp = n.input(x.shape)
    literal = n.net.add_shuffle(inp)
    literal.reshape_dims, literal.zero_is_placeholder = (0, 4), False
    placeholder = n.net.add_shuffle(inp)
    placeholder.reshape_dims = (0, 0)
    got = n.run({"x": x}, literal.get_output(0), placeholder.get_output(0))
    assert got[0].shape == (0, 4) and got[1].shape == (2, 0) and placeholder.zero_is_placeholder


def test_dynamic_reshape_from_shape_tensors():
    """Reshape dims computed from IShapeLayer/gather/concat/elementwise at run time, dynamic batch."""
    x = rand(3, 4, 5)
    n = Net()
    inp = n.input((-1, 4, 5))
    shape = n.net.add_shape(inp).get_output(0)
    batch = n.net.add_gather(shape, n.const(np.array([0], np.int64)), 0).get_output(0)
    rest = n.net.add_slice(shape, (1,), (2,), (1,)).get_output(0)
    flat = n.net.add_reduce(rest, t.ReduceOperation.PROD, 1, True).get_output(0)
    dims = n.net.add_concatenation([batch, flat]).get_output(0)
    layer = n.net.add_shuffle(inp)
    layer.set_input(1, dims)
    got, shp = n.run({"x": x}, layer.get_output(0), shape)
    np.testing.assert_array_equal(shp, [3, 4, 5])
    close(got, x.reshape(3, 20))


def test_concatenation_default_and_explicit_axis():
    a, b = rand(2, 3, 4, 5), rand(2, 2, 4, 5, seed=1)
    n = Net()
    ia, ib = n.input(a.shape, name="a"), n.input(b.shape, name="b")
    chan = n.net.add_concatenation([ia, ib])
    assert chan.axis == 1  # rank - 3
    last = n.net.add_concatenation([ia, ia, ia])
    last.axis = 3
    got = n.run({"a": a, "b": b}, chan.get_output(0), last.get_output(0))
    close(got[0], np.concatenate([a, b], 1))
    close(got[1], np.concatenate([a, a, a], 3))


def test_squeeze_unsqueeze():
    x = rand(2, 1, 3, 1)
    n = Net()
    inp = n.input(x.shape)
    sq = n.net.add_squeeze(inp, n.const(np.array([1, -1], np.int64))).get_output(0)
    un = n.net.add_unsqueeze(sq, n.const(np.array([0, -1], np.int64))).get_output(0)
    got = n.run({"x": x}, sq, un)
    close(got[0], x.reshape(2, 3))
    close(got[1], x.reshape(1, 2, 3, 1))


def test_squeeze_without_axes_drops_static_unit_dims():
    """No axes input: every dimension that is 1 in the definition goes; a dynamic one stays, and
    being 1 at run time is an error (it would change the rank)."""
    n = Net()
    inp = n.input((1, -1, 1, 3))
    layer = n.net.add_squeeze(inp)
    assert layer.num_inputs == 1 and tuple(layer.get_output(0).shape) == (-1, 3)
    x = rand(1, 4, 1, 3)
    close(n.run({"x": x}, layer.get_output(0)), x.reshape(4, 3))
    with pytest.raises(ValueError, match="dynamic dimension"):
        run_network(n.net, {"x": rand(1, 1, 1, 3)})


SAMPLE = t.SampleMode


@pytest.mark.parametrize("mode,np_mode", [(SAMPLE.WRAP, "wrap"), (SAMPLE.CLAMP, "edge"), (SAMPLE.REFLECT, "reflect"),
                                          (SAMPLE.FILL, "constant")], ids=["WRAP", "CLAMP", "REFLECT", "FILL"])
def test_slice_sample_modes(mode, np_mode):
    """Coordinates -4 .. 8 step 1 on H (size 4) and -2, 1, 4, 7 on W (size 5)."""
    x = rand(2, 4, 5)
    n = Net()
    inp = n.input(x.shape)
    layer = n.net.add_slice(inp, (0, -4, -2), (2, 13, 4), (1, 1, 3))
    layer.mode = mode
    if mode == SAMPLE.FILL:
        layer.set_input(4, n.const(np.array(7.5, np.float32)))
    got = n.run({"x": x}, layer.get_output(0))
    kw = {"constant_values": 7.5} if np_mode == "constant" else {}
    padded = np.pad(x, ((0, 0), (4, 5), (2, 3)), mode=np_mode, **kw)
    close(got, padded[:, 0:13, 0:10:3])


def test_slice_strided_negative_and_dynamic_inputs():
    x = rand(3, 6, 7)
    n = Net()
    inp = n.input(x.shape)
    rev = n.net.add_slice(inp, (2, 1, 6), (2, 3, 4), (-1, 2, -2)).get_output(0)
    dyn = n.net.add_slice(inp, (0, 0, 0), (1, 1, 1), (1, 1, 1))
    for j, v in enumerate(([1, 2], [2, 3], [1, 2])):
        dyn.set_input(j + 1, n.const(np.array(v, np.int64)))
    dyn.set_input(5, n.const(np.array([-2, 2], np.int64)))
    got = n.run({"x": x}, rev, dyn.get_output(0))
    close(got[0], x[2:0:-1, 1:6:2, 6::-2])
    close(got[1], x[:, 1:3, 2:7:2])


def test_slice_strict_bounds_raises():
    x = rand(4)
    n = Net()
    out = n.net.add_slice(n.input(x.shape), (2,), (3,), (1,)).get_output(0)
    with pytest.raises(ValueError, match="STRICT_BOUNDS"):
        n.run({"x": x}, out)


def test_padding_with_crop():
    x = rand(2, 3, 5, 6)
    n = Net()
    out = n.net.add_padding_nd(n.input(x.shape), (1, -1), (2, 3)).get_output(0)
    close(n.run({"x": x}, out), F.pad(tt(x), (-1, 3, 1, 2)).numpy())


GM = t.GatherMode


def test_gather_modes():
    data = rand(3, 4, 5)
    n = Net()
    inp = n.input(data.shape)
    idx = np.array([[0, -1], [5, 2]], np.int32)  # -1 counts from the back, 5 is out of bounds -> 0
    default = n.net.add_gather(inp, n.const(idx), 1).get_output(0)
    el_idx = np.random.default_rng(1).integers(0, 4, (3, 2, 5)).astype(np.int32)
    element = n.net.add_gather_v2(inp, n.const(el_idx), GM.ELEMENT)
    element.axis = 1
    nd_idx = np.array([[0, 1], [2, 3], [1, 0]], np.int64)
    nd = n.net.add_gather_v2(inp, n.const(nd_idx), GM.ND).get_output(0)
    got = n.run({"x": data}, default, element.get_output(0), nd)
    want = np.take(data, np.where(idx < 0, idx + 4, np.minimum(idx, 3)), axis=1)
    want[:, 1, 0] = 0
    close(got[0], want)
    close(got[1], np.take_along_axis(data, el_idx, 1))
    close(got[2], data[nd_idx[:, 0], nd_idx[:, 1]])


def test_gather_elementwise_dims():
    """num_elementwise_dims: DEFAULT with 1 gathers each batch element from its own slice; ND with
    b is ONNX GatherND with batch_dims = b."""
    data = rand(3, 4, 5)
    n = Net()
    inp = n.input(data.shape)
    idx = np.array([[0, 3], [1, 1], [2, 0]], np.int32)
    default = n.net.add_gather(inp, n.const(idx), 2)
    default.num_elementwise_dims = 1
    nd_idx = np.array([[[0, 4], [3, 1]], [[1, 1], [2, 2]], [[3, 0], [0, 3]]], np.int32)
    nd = n.net.add_gather_v2(inp, n.const(nd_idx), GM.ND)
    nd.num_elementwise_dims = 1
    got = n.run({"x": data}, default.get_output(0), nd.get_output(0))
    close(got[0], np.stack([data[b][:, idx[b]] for b in range(3)]))
    close(got[1], np.stack([[data[b][i, j] for i, j in nd_idx[b]] for b in range(3)]))


def test_reverse_sequence():
    """Sequence axis 0, batch axis 1 (the defaults): column b has its first lengths[b] rows reversed."""
    x = rand(5, 4, 3)
    lengths = np.array([5, 1, 3, 0], np.int32)
    n = Net()
    layer = n.net.add_reverse_sequence(n.input(x.shape), n.const(lengths))
    assert (layer.batch_axis, layer.sequence_axis) == (1, 0)
    got = n.run({"x": x}, layer.get_output(0))
    want = x.copy()
    for b, k in enumerate(lengths):
        want[:k, b] = x[:k, b][::-1]
    close(got, want)
    n2 = Net()
    swapped = n2.net.add_reverse_sequence(n2.input(x.shape), n2.const(np.array([2, 4, 4, 1, 3], np.int32)))
    swapped.batch_axis, swapped.sequence_axis = 0, 1
    want = x.copy()
    for b, k in enumerate([2, 4, 4, 1, 3]):
        want[b, :k] = x[b, :k][::-1]
    close(n2.run({"x": x}, swapped.get_output(0)), want)


def test_one_hot_against_torch():
    """values [off, on]; negative indices count from depth; out-of-range ones give all off."""
    idx = np.array([[0, 3, -1], [2, 4, -5]], np.int32)
    n = Net()
    inp = n.input(idx.shape, t.int32)
    values, depth = n.const(np.array([-0.5, 2.0], np.float32)), n.const(np.array(4, np.int32))
    last = n.net.add_one_hot(inp, values, depth, -1).get_output(0)
    first = n.net.add_one_hot(inp, values, depth, 0).get_output(0)
    got = n.run({"x": idx}, last, first)
    wrapped = np.where(idx < 0, idx + 4, idx)
    hot = F.one_hot(tt(np.where((wrapped >= 0) & (wrapped < 4), wrapped, 4)).long(), 5)[..., :4].numpy()
    want = np.where(hot == 1, 2.0, -0.5).astype(np.float32)
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], np.moveaxis(want, -1, 0))


def test_grid_sample_linear_modes():
    x = rand(2, 3, 5, 6)
    grid = rand(2, 4, 7, 2, seed=1, lo=-1.3, hi=1.3)
    for mode, pad in ((SAMPLE.FILL, "zeros"), (SAMPLE.CLAMP, "border"), (SAMPLE.REFLECT, "reflection")):
        for align in (False, True):
            n = Net()
            layer = n.net.add_grid_sample(n.input(x.shape), n.const(grid))
            layer.sample_mode, layer.align_corners = mode, align
            want = F.grid_sample(tt(x), tt(grid), "bilinear", pad, align)
            close(n.run({"x": x}, layer.get_output(0)), want.numpy())


def test_scatter_modes():
    data, upd = rand(3, 4), rand(2, 4, seed=1)
    n = Net()
    inp = n.input(data.shape)
    el_idx = np.array([[2, 0, 1, 2], [0, 1, 2, 0]], np.int32)
    element = n.net.add_scatter(inp, n.const(el_idx), n.const(upd), t.ScatterMode.ELEMENT)
    element.axis = 0
    nd = n.net.add_scatter(inp, n.const(np.array([[2], [0]], np.int64)), n.const(upd), t.ScatterMode.ND)
    dup = n.net.add_scatter(inp, n.const(np.array([[1], [1]], np.int64)), n.const(upd), t.ScatterMode.ND)
    got = n.run({"x": data}, element.get_output(0), nd.get_output(0))
    want = data.copy()
    np.put_along_axis(want, el_idx, upd, 0)
    close(got[0], want)
    want = data.copy()
    want[[2, 0]] = upd
    close(got[1], want)
    n.net.mark_output(dup.get_output(0))
    with pytest.raises(ValueError, match="more than once"):
        run_network(n.net, {"x": data})


# --- reductions, softmax, normalization ---------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_softmax_axes_bitmask(axis):
    x = rand(2, 3, 4, 5, lo=-3, hi=3)
    n = Net()
    layer = n.net.add_softmax(n.input(x.shape))
    layer.axes = 1 << axis
    close(n.run({"x": x}, layer.get_output(0)), torch.softmax(tt(x), axis).numpy())


def test_softmax_default_axis_is_rank_minus_three():
    x = rand(2, 3, 4, 5)
    n = Net()
    layer = n.net.add_softmax(n.input(x.shape))
    close(n.run({"x": x}, layer.get_output(0)), torch.softmax(tt(x), 1).numpy())


RO = t.ReduceOperation


REDUCE = {RO.SUM: np.sum, RO.PROD: np.prod, RO.MAX: np.max, RO.MIN: np.min, RO.AVG: np.mean}


@pytest.mark.parametrize("op", list(REDUCE), ids=lambda o: o.name)
@pytest.mark.parametrize("keep", [True, False], ids=["keep_dims", "drop_dims"])
def test_reduce(op, keep):
    x = rand(2, 3, 4, 5, lo=0.5, hi=1.5)
    n = Net()
    out = n.net.add_reduce(n.input(x.shape), op, 0b1010, keep).get_output(0)
    close(n.run({"x": x}, out), REDUCE[op](x, axis=(1, 3), keepdims=keep))


def test_topk():
    x = rand(2, 7, 3)
    n = Net()
    inp = n.input(x.shape)
    hi = n.net.add_topk(inp, t.TopKOperation.MAX, 3, 1 << 1)
    lo = n.net.add_topk(inp, t.TopKOperation.MIN, 2, 1 << 2)
    got = n.run({"x": x}, *[hi.get_output(i) for i in range(2)], *[lo.get_output(i) for i in range(2)])
    v, i = torch.topk(tt(x), 3, 1)
    close(got[0], v.numpy())
    np.testing.assert_array_equal(got[1], i.numpy())
    assert got[1].dtype == np.int32
    v, i = torch.topk(tt(x), 2, 2, largest=False)
    close(got[2], v.numpy())
    np.testing.assert_array_equal(got[3], i.numpy())


@pytest.mark.parametrize("op", [t.TopKOperation.MAX, t.TopKOperation.MIN], ids=["MAX", "MIN"])
def test_topk_ties_lowest_index_first(op):
    x = np.array([[1, 3, 3, 0, 3, 1, 0, 1]], np.float32)
    n = Net()
    layer = n.net.add_topk(n.input(x.shape), op, 5, 1 << 1)
    values, indices = n.run({"x": x}, layer.get_output(0), layer.get_output(1))
    if op == t.TopKOperation.MAX:
        np.testing.assert_array_equal(indices, [[1, 2, 4, 0, 5]])
        np.testing.assert_array_equal(values, [[3, 3, 3, 1, 1]])
    else:
        np.testing.assert_array_equal(indices, [[3, 6, 0, 5, 7]])
        np.testing.assert_array_equal(values, [[0, 0, 1, 1, 1]])


def test_cumulative():
    x = rand(3, 5)
    n = Net()
    inp = n.input(x.shape)
    axis = n.const(np.array(1, np.int32))
    outs = [n.net.add_cumulative(inp, axis, t.CumulativeOperation.SUM, ex, rev).get_output(0)
            for ex, rev in ((False, False), (True, False), (False, True), (True, True))]
    got = n.run({"x": x}, *outs)
    cs = np.cumsum(x, 1)
    rcs = np.cumsum(x[:, ::-1], 1)[:, ::-1]
    close(got[0], cs)
    close(got[1], cs - x)
    close(got[2], rcs)
    close(got[3], rcs - x)


def norm_net(x, scale, bias, axes, groups=1, v2=False):
    n = Net()
    add = n.net.add_normalization_v2 if v2 else n.net.add_normalization
    layer = add(n.input(x.shape), n.const(scale), n.const(bias), axes)
    layer.epsilon, layer.num_groups = 1e-3, groups
    return n.run({"x": x}, layer.get_output(0))


def test_layer_norm():
    x = rand(2, 3, 4, 6, lo=-2, hi=3)
    g, b = rand(1, 1, 4, 6, seed=1), rand(1, 1, 4, 6, seed=2)
    got = norm_net(x, g, b, 0b1100)
    close(got, F.layer_norm(tt(x), (4, 6), tt(g[0, 0]), tt(b[0, 0]), 1e-3).numpy())


def test_instance_norm():
    x = rand(2, 3, 4, 6, lo=-2, hi=3)
    g, b = rand(1, 3, 1, 1, seed=1), rand(1, 3, 1, 1, seed=2)
    got = norm_net(x, g, b, 0b1100)
    close(got, F.instance_norm(tt(x), weight=tt(g.reshape(3)), bias=tt(b.reshape(3)), eps=1e-3).numpy())


def test_group_norm_v2_per_channel_affine():
    x = rand(2, 6, 4, 5, lo=-2, hi=3)
    g, b = rand(1, 6, 1, 1, seed=1), rand(1, 6, 1, 1, seed=2)
    got = norm_net(x, g, b, 0b1100, groups=3, v2=True)
    close(got, F.group_norm(tt(x), 3, tt(g.reshape(6)), tt(b.reshape(6)), 1e-3).numpy())


def test_group_norm_v1_rejects_per_channel_affine():
    x = rand(2, 6, 4, 5)
    with pytest.raises(ValueError, match="addNormalizationV2"):
        norm_net(x, rand(1, 6, 1, 1), rand(1, 6, 1, 1), 0b1100, groups=3)


def test_group_norm_v1_per_group_affine():
    """addNormalization with num_groups G takes [1, G, 1, 1] scale and bias, one per group."""
    x = rand(2, 6, 4, 5, lo=-2, hi=3)
    g, b = rand(1, 3, 1, 1, seed=1), rand(1, 3, 1, 1, seed=2)
    got = norm_net(x, g, b, 0b1100, groups=3)
    want = F.group_norm(tt(x), 3, eps=1e-3).numpy() * np.repeat(g, 2, 1) + np.repeat(b, 2, 1)
    close(got, want)


# --- attention ----------------------------------------------------------------------------

CK, NORM = t.CausalMaskKind, t.AttentionNormalizationOp


def attention_net(q, k, v, mask=None, causal=CK.NONE, norm=NORM.SOFTMAX, prescale=True):
    """IAttention has no scale: Q is multiplied by 1 / sqrt(head size) first, as emitters must."""
    n = Net()
    iq, ik, iv = (n.input(a.shape, name=name) for a, name in ((q, "q"), (k, "k"), (v, "v")))
    if prescale:
        iq = n.net.add_elementwise(iq, n.const(np.full((1, 1, 1, 1), q.shape[-1] ** -0.5, np.float32)),
                                   EW.PROD).get_output(0)
    att = n.net.add_attention_v2(iq, ik, iv, norm, causal)
    feeds = {"q": q, "k": k, "v": v}
    if mask is not None:
        att.mask = n.input(mask.shape, t.bool if mask.dtype == bool else t.float32, "m")
        feeds["m"] = mask
    return n.run(feeds, att.get_output(0))


def qkv(hq=4, hkv=4, sq=5, skv=7, d=8):
    return (rand(2, hq, sq, d, seed=1, lo=-2, hi=2), rand(2, hkv, skv, d, seed=2, lo=-2, hi=2),
            rand(2, hkv, skv, d, seed=3))


def test_attention_float_mask_against_sdpa():
    q, k, v = qkv()
    mask = rand(1, 4, 5, 7, seed=4, lo=-3, hi=1)
    want = F.scaled_dot_product_attention(tt(q), tt(k), tt(v), attn_mask=tt(mask))
    close(attention_net(q, k, v, mask), want.numpy())


def test_attention_bool_mask_keeps_true_positions():
    q, k, v = qkv()
    mask = np.random.default_rng(5).random((2, 1, 5, 7)) < 0.6
    mask[..., 0] = True  # no fully masked row
    want = F.scaled_dot_product_attention(tt(q), tt(k), tt(v), attn_mask=tt(mask))
    close(attention_net(q, k, v, mask), want.numpy())


def test_attention_causal_kinds_and_grouped_heads():
    """UPPER_LEFT is torch's is_causal (key j <= query i); LOWER_RIGHT shifts the diagonal by
    Skv - Sq. Two key/value heads serve four query heads."""
    q, k, v = qkv(hq=4, hkv=2)
    upper = F.scaled_dot_product_attention(tt(q), tt(k), tt(v), is_causal=True, enable_gqa=True)
    close(attention_net(q, k, v, causal=CK.UPPER_LEFT), upper.numpy())
    keep = torch.ones(5, 7, dtype=torch.bool).tril(7 - 5)
    lower = F.scaled_dot_product_attention(tt(q), tt(k), tt(v), attn_mask=keep, enable_gqa=True)
    close(attention_net(q, k, v, causal=CK.LOWER_RIGHT), lower.numpy())


def test_attention_without_normalization_is_unscaled_product():
    q, k, v = qkv()
    got = attention_net(q, k, v, norm=NORM.NONE, prescale=False)
    close(got, (q @ k.swapaxes(-1, -2)) @ v)


def test_attention_readback_names_layers():
    """The network holds an ATTENTION_INPUT layer (inputs q, k, v, mask) and an ATTENTION_OUTPUT
    layer; both lead back to the IAttention through `.attention`."""
    q, k, v = qkv()
    n = Net()
    att = n.net.add_attention_v2(*(n.input(a.shape, name=name) for a, name in ((q, "q"), (k, "k"), (v, "v"))),
                                 NORM.SOFTMAX, CK.NONE)
    att.mask = n.input((1, 1, 5, 7), t.bool, "m")
    kinds = [n.net.get_layer(i).type for i in range(n.net.num_layers)]
    assert kinds == [t.LayerType.ATTENTION_INPUT, t.LayerType.ATTENTION_OUTPUT]
    layer = n.net.get_layer(0)
    layer.__class__ = t.IAttentionInputLayer
    assert layer.attention.mask.name == "m" and layer.get_input(3).name == "m"
    mask = np.zeros((1, 1, 5, 7), bool)
    mask[..., 2:] = True
    mask[0, 0, 3] = False  # query 3 sees no key
    with pytest.raises(UnsupportedLayerError, match="every key is masked"):
        n.run({"q": q, "k": k, "v": v, "m": mask}, att.get_output(0))


# --- quantize / dequantize ------------------------------------------------------------------

def qdq_net(x, scale, to_type, axis=None, out_type=t.float32, block=None, zero_point=None):
    n = Net()
    s = n.const(np.asarray(scale, np.float32))
    q = n.net.add_quantize(n.input(x.shape), s, to_type)
    if axis is not None:
        q.axis = axis
    if block is not None:
        q.block_shape = block
    if zero_point is not None:
        q.set_input(2, n.const(zero_point))
    dq = n.net.add_dequantize(q.get_output(0), s, out_type)
    if axis is not None:
        dq.axis = axis
    if block is not None:
        dq.block_shape = block
    return n.run({"x": x}, q.get_output(0), dq.get_output(0))


def test_quantize_int8_ties_to_even_and_saturation():
    x = np.array([2.5, -2.5, 3.5, 0.5, 1.5, -0.49, 127.6, 300.0, -128.4, -129.0, -1e9], np.float32)
    q, dq = qdq_net(x, 1.0, t.int8)
    np.testing.assert_array_equal(q, [2, -2, 4, 0, 2, 0, 127, 127, -128, -128, -128])
    assert q.dtype == np.int8 and dq.dtype == np.float32
    np.testing.assert_array_equal(dq, q.astype(np.float32))
    q, dq = qdq_net(x[:5], 0.5, t.int8)  # x / 0.5 = 5, -5, 7, 1, 3
    np.testing.assert_array_equal(q, [5, -5, 7, 1, 3])
    np.testing.assert_array_equal(dq, q * np.float32(0.5))


@pytest.mark.parametrize("axis", [0, 1])
def test_quantize_per_axis(axis):
    x = rand(3, 4, lo=-10, hi=10)
    scale = rand(x.shape[axis], seed=1, lo=0.02, hi=0.1)
    q, dq = qdq_net(x, scale, t.int8, axis=axis)
    s = scale.reshape((-1, 1) if axis == 0 else (1, -1))
    want = np.clip(np.round(x / s), -128, 127)
    np.testing.assert_array_equal(q, want)
    np.testing.assert_array_equal(dq, (want * s).astype(np.float32))


@pytest.mark.parametrize("axis", [None, 1])
def test_quantize_single_scale_is_per_tensor(axis):
    """A (1,) scale is per tensor whatever the axis (default -1, length 4 here), and TensorRT builds it."""
    x = rand(2, 12, 4, lo=-3, hi=3)
    q, dq = qdq_net(x, [0.05], t.int8, axis=axis)
    want = np.clip(np.round(x / np.float32(0.05)), -128, 127)
    np.testing.assert_array_equal(q, want)
    np.testing.assert_array_equal(dq, (want * np.float32(0.05)).astype(np.float32))
    n = Net()
    s = n.const(np.array([0.05], np.float32))
    y = n.net.add_dequantize(n.net.add_quantize(n.input(x.shape), s, t.int8).get_output(0), s, t.float32)
    n.net.mark_output(y.get_output(0))
    assert n.builder.build_serialized_network(n.net, n.builder.create_builder_config()) is not None


def test_quantize_fp8_rounding_subnormals_and_saturation():
    """E4M3: 3 mantissa bits, subnormals are multiples of 2^-9, largest finite 448."""
    tiny = 2.0 ** -9
    x = np.array([1.0625, 1.1875, 0.5 * tiny, 1.5 * tiny, 2.5 * tiny, 0.3 * tiny, 448, 460, 470, 1e6, -1e6,
                  -3.0], np.float32)
    want = np.array([1.0, 1.25, 0.0, 2 * tiny, 2 * tiny, 0.0, 448, 448, 448, 448, -448, -3.0], np.float32)
    q, dq = qdq_net(x, 1.0, t.fp8)
    np.testing.assert_array_equal(q, want)
    np.testing.assert_array_equal(dq, want)
    q, dq = qdq_net(x[:2], 2.0, t.fp8, out_type=t.float16)  # 0.53125 -> 0.5, 0.59375 -> 0.625
    np.testing.assert_array_equal(q, [0.5, 0.625])
    assert dq.dtype == np.float16 and list(dq) == [1.0, 1.25]


def test_quantize_int4_blocks():
    """INT4 [-8, 7]; a [4, 2] scale on a [4, 6] input quantizes blocks of 1 x 3 (block_shape set, or
    derived from the shapes when not)."""
    x = np.array([[-9, -8.5, 7.5, 6.5, 3, 0.5]] * 4, np.float32) * np.array([[1], [2], [1], [2]], np.float32)
    scale = np.array([[1, 2], [2, 1], [1, 1], [2, 2]], np.float32)
    full = np.repeat(scale, 3, 1)
    want = np.clip(np.round(x / full), -8, 7)
    for block in ((1, 3), None):
        q, dq = qdq_net(x, scale, t.int4, block=block)
        np.testing.assert_array_equal(q, want)
        assert q.dtype.name == "int4"   # ml_dtypes.int4
        np.testing.assert_array_equal(dq, want * full)
    # by hand: clamps at -8 and 7, ties to even (-8.5 -> -8, 6.5 -> 6, 1.5 -> 2, 0.25 -> 0)
    np.testing.assert_array_equal(want[[0, 2]], [[-8, -8, 7, 3, 2, 0], [-8, -8, 7, 6, 3, 0]])


def test_quantize_nonzero_zero_point_unsupported():
    with pytest.raises(UnsupportedLayerError, match="zero point"):
        qdq_net(rand(4), 1.0, t.int8, zero_point=np.array(3, np.int8))


# --- resize -------------------------------------------------------------------------------

RC, IM, RR = t.ResizeCoordinateTransformation, t.InterpolationMode, t.ResizeRoundMode


def resize_net(x, out_shape, mode, coord, setup=None, dynamic=False):
    n = Net()
    layer = n.net.add_resize(n.input(x.shape))
    if dynamic:
        layer.set_input(1, n.const(np.array(out_shape, np.int32)))
    else:
        layer.shape = out_shape
    layer.resize_mode, layer.coordinate_transformation = mode, coord
    if setup:
        setup(layer)
    return n.run({"x": x}, layer.get_output(0))


@pytest.mark.parametrize("size", [(13, 11), (5, 4)], ids=["up", "down"])
@pytest.mark.parametrize("mode,coord,torch_mode,align,rounding", [
    (IM.LINEAR, RC.HALF_PIXEL, "bilinear", False, None),
    (IM.LINEAR, RC.ALIGN_CORNERS, "bilinear", True, None),
    (IM.CUBIC, RC.HALF_PIXEL, "bicubic", False, None),
    (IM.CUBIC, RC.ALIGN_CORNERS, "bicubic", True, None),
    (IM.NEAREST, RC.ASYMMETRIC, "nearest", None, RR.FLOOR),
    (IM.NEAREST, RC.HALF_PIXEL, "nearest-exact", None, RR.HALF_UP),
], ids=["linear_half_pixel", "linear_align_corners", "cubic_half_pixel", "cubic_align_corners", "nearest",
        "nearest_exact"])
def test_resize_against_interpolate(size, mode, coord, torch_mode, align, rounding):
    x = rand(2, 3, 7, 6)
    setup = (lambda L: setattr(L, "nearest_rounding", rounding)) if rounding is not None else None
    got = resize_net(x, (2, 3) + size, mode, coord, setup, dynamic=size == (5, 4))
    want = F.interpolate(tt(x), size=size, mode=torch_mode, align_corners=align)
    close(got, want.numpy())


def test_resize_linear_asymmetric_by_hand():
    """x_original = x_resized * 4 / 8: samples 0, .5, 1, ..., 3.5, the last clamped to the edge."""
    x = np.array([[[[1.0, 3.0, 7.0, 15.0]]]], np.float32)
    got = resize_net(x, (1, 1, 1, 8), IM.LINEAR, RC.ASYMMETRIC)
    close(got, [[[[1, 2, 3, 5, 7, 11, 15, 15]]]])


@pytest.mark.parametrize("rounding,want", [(RR.HALF_UP, [0, 1, 1, 2, 3, 3]), (RR.HALF_DOWN, [0, 1, 1, 2, 3, 3]),
                                           (RR.FLOOR, [0, 0, 1, 2, 2, 3]), (RR.CEIL, [0, 1, 2, 2, 3, 3])],
                         ids=["HALF_UP", "HALF_DOWN", "FLOOR", "CEIL"])
def test_resize_nearest_rounding_modes(rounding, want):
    """ASYMMETRIC 4 -> 6: x_original = i * 2 / 3 = 0, .67, 1.33, 2, 2.67, 3.33 (clamped to 3)."""
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    got = resize_net(x, (1, 1, 1, 6), IM.NEAREST, RC.ASYMMETRIC, lambda L: setattr(L, "nearest_rounding", rounding))
    np.testing.assert_array_equal(got.reshape(-1), want)


def test_resize_scales_trilinear_and_single_pixel_selector():
    x = rand(1, 2, 3, 4, 5)
    n = Net()
    inp = n.input(x.shape)
    tri = n.net.add_resize(inp)
    tri.scales = (1, 1, 2, 2, 2)
    tri.resize_mode, tri.coordinate_transformation = IM.LINEAR, RC.ALIGN_CORNERS
    one = n.net.add_resize(inp)
    one.shape = (1, 2, 3, 4, 1)
    one.resize_mode, one.coordinate_transformation = IM.LINEAR, RC.HALF_PIXEL
    one.selector_for_single_pixel = t.ResizeSelector.UPPER
    got = n.run({"x": x}, tri.get_output(0), one.get_output(0))
    close(got[0], F.interpolate(tt(x), scale_factor=2, mode="trilinear", align_corners=True).numpy())
    close(got[1], x[..., :1])


def test_resize_cubic_exclude_outside():
    """With exclude_outside, taps outside the input get weight 0 and the rest are renormalised."""
    x = np.array([[[[0.0, 1.0, 4.0, 9.0]]]], np.float32)

    def setup(L):
        L.exclude_outside, L.cubic_coeff = True, -0.5
    got = resize_net(x, (1, 1, 1, 8), IM.CUBIC, RC.HALF_PIXEL, setup)

    def w(d, a=-0.5):  # the cubic weight IResizeLayer documents for coefficient A
        d = abs(d)
        if d <= 1:
            return ((a + 2) * d - (a + 3)) * d * d + 1
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a if d < 2 else 0
    want = []
    for o in range(8):
        c = (o + 0.5) / 2 - 0.5
        taps = [j for j in range(math.floor(c) - 1, math.floor(c) + 3) if 0 <= j < 4]
        ws = [w(c - j) for j in taps]
        want.append(sum(wi * x[0, 0, 0, j] for wi, j in zip(ws, taps)) / sum(ws))
    close(got.reshape(-1), np.array(want, np.float32))


# --- other layers -------------------------------------------------------------------------

def test_fill_linspace_and_non_zero():
    n = Net()
    fill = n.net.add_fill((3, 4), t.FillOperation.LINSPACE, t.float32)
    fill.set_input(1, n.const(np.array(1.0, np.float32)))
    fill.set_input(2, n.const(np.array([100.0, 10.0], np.float32)))
    x = np.array([[0, 1.5, 0], [2, 0, 0]], np.float32)
    nz = n.net.add_non_zero(n.input(x.shape)).get_output(0)
    got = n.run({"x": x}, fill.get_output(0), nz)
    close(got[0], 1 + 100 * np.arange(3)[:, None] + 10 * np.arange(4)[None, :])
    np.testing.assert_array_equal(got[1], np.array(np.nonzero(x)))


def test_fill_linspace_static_int():
    n = Net()
    fill = n.net.add_fill((5,), t.FillOperation.LINSPACE, t.int32)
    fill.alpha, fill.beta = 2, 3
    got = n.run({}, fill.get_output(0))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [2, 5, 8, 11, 14])


def test_assertion():
    x = rand(2, 3)
    n = Net()
    inp = n.input((-1, 3))
    shape = n.net.add_shape(inp).get_output(0)
    n.net.add_assertion(n.net.add_elementwise(shape, n.const(np.array([2, 3], np.int64)), EW.EQUAL).get_output(0),
                        "shape is 2x3")
    close(n.run({"x": x}, n.net.add_identity(inp).get_output(0)), x)
    with pytest.raises(ValueError, match="shape is 2x3"):
        run_network(n.net, {"x": rand(4, 3)})


def test_float16_network():
    """Half input and weights: computed in float32, rounded to float16 at each layer output."""
    x, w = rand(1, 4, 6, 6).astype(np.float16), rand(8, 4, 3, 3, seed=1).astype(np.float16)
    n = Net()
    conv = n.net.add_convolution_nd(n.input(x.shape, t.float16), 8, (3, 3), n.w(w))
    relu = n.net.add_activation(conv.get_output(0), AT.RELU).get_output(0)
    got = n.run({"x": x}, relu)
    assert got.dtype == np.float16
    want = F.relu(F.conv2d(tt(x).float(), tt(w).float())).half().numpy()
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_all_outputs_and_dynamic_batch():
    x = rand(3, 2, 4, 4)
    n = Net()
    inp = n.input((-1, 2, 4, 4))
    act = n.net.add_activation(inp, AT.RELU)
    pool = n.net.add_pooling_nd(act.get_output(0), PT.MAX, (2, 2))
    pool.stride_nd = (2, 2)
    n.net.mark_output(pool.get_output(0))
    res = run_network(n.net, {"x": x}, outputs="all")
    assert set(res) == {"x", act.get_output(0).name, pool.get_output(0).name}
    close(res[act.get_output(0).name], np.maximum(x, 0))
    close(res[pool.get_output(0).name], F.max_pool2d(tt(np.maximum(x, 0)), 2).numpy())


# --- unsupported --------------------------------------------------------------------------

def test_unsupported_layer_type_names_layer():
    x = rand(1, 3, 4, 4)
    n = Net()
    layer = n.net.add_lrn(n.input(x.shape), 3, 1e-4, 0.75, 1.0)
    layer.name = "my_lrn"
    with pytest.raises(UnsupportedLayerError, match=r"'my_lrn' \(LayerType.LRN\)"):
        n.run({"x": x}, layer.get_output(0))


def _cubic_5d(n, i):
    """CUBIC grid sampling of a 5-D input: TensorRT builds it, PyTorch's bicubic covers 4-D only."""
    s = n.net.add_shuffle(i)
    s.reshape_dims = (1, 3, 5, 5, 1)
    layer = n.net.add_grid_sample(s.get_output(0), n.const(np.zeros((1, 2, 2, 2, 3), np.float32)))
    layer.interpolation_mode = IM.CUBIC
    return layer


@pytest.mark.parametrize("build,match", [
    (_cubic_5d, "grid sample InterpolationMode.CUBIC of a 5-D input"),
    (lambda n, i: (lambda L: (setattr(L, "scales", (1, 1, 1.5, 1.5)), L)[1])(n.net.add_resize(i)), "non-integral"),
    (lambda n, i: n.net.add_fill((2, 2), t.FillOperation.RANDOM_UNIFORM, t.float32), "RANDOM_UNIFORM"),
], ids=["grid_sample_cubic", "resize_fractional_scales", "random_fill"])
def test_unsupported_attribute_names_layer_and_value(build, match):
    x = rand(1, 3, 5, 5)
    n = Net()
    layer = build(n, n.input(x.shape))
    layer.name = "bad_layer"
    with pytest.raises(UnsupportedLayerError, match=match) as err:
        n.run({"x": x}, layer.get_output(0))
    assert "'bad_layer'" in str(err.value) and "LayerType." in str(err.value)


# --- whole models through the ONNX parser -------------------------------------------------

def randomize_batchnorm(model, seed=0):
    """Non-trivial running statistics and affine terms, so BatchNorm folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
    return model.eval()


def check_onnx(model, x, tmp_path, dynamic_batch=False, tol=1e-4):
    """Export, parse with OnnxParser, interpret; max error within tol * the output's largest magnitude."""
    path = str(tmp_path / "model.onnx")
    axes = {"x": {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
        torch.onnx.export(model, x, path, dynamo=False, opset_version=17, input_names=["x"], dynamic_axes=axes)
        want = model(x)
    builder = t.Builder(logger())
    net = builder.create_network(1 << int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = t.OnnxParser(net, logger())
    assert parser.parse_from_file(path), [parser.get_error(i).desc() for i in range(parser.num_errors)]
    if dynamic_batch:
        assert net.get_input(0).shape[0] == -1
    got = run_network(net, {"x": x.numpy()})
    wants = list(want.values()) if isinstance(want, dict) else list(want) if isinstance(want, tuple) else [want]
    outs = [net.get_output(i).name for i in range(net.num_outputs)]
    assert len(outs) == len(wants)
    for name, w in zip(outs, wants):
        w = w.numpy()
        assert got[name].shape == w.shape
        assert np.abs(got[name] - w).max() <= tol * np.abs(w).max(), name
    return net


def torchvision_model(name, **kw):
    import torchvision
    torch.manual_seed(0)
    ctor = getattr(torchvision.models, name, None) or getattr(torchvision.models.segmentation, name)
    return randomize_batchnorm(ctor(weights=None, **kw))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "squeezenet1_1", "googlenet"])
def test_onnx_classification_models(name, tmp_path):
    kw = {"init_weights": True, "aux_logits": False} if name == "googlenet" else {}
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    check_onnx(torchvision_model(name, **kw), x, tmp_path, dynamic_batch=name == "resnet18")


def test_onnx_lraspp_segmentation(tmp_path):
    """Hardswish/hardsigmoid, squeeze-excitation, and bilinear resizes sized by shape-tensor arithmetic."""
    model = torchvision_model("lraspp_mobilenet_v3_large", weights_backbone=None, num_classes=5)
    net = check_onnx(model, torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1)), tmp_path)
    kinds = {net.get_layer(i).type for i in range(net.num_layers)}
    assert {t.LayerType.RESIZE, t.LayerType.SHAPE, t.LayerType.SLICE} <= kinds


class Interpolations(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return (F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False),
                F.interpolate(y, size=(13, 11), mode="bilinear", align_corners=True),
                F.interpolate(y, scale_factor=2, mode="nearest"),
                F.interpolate(y, size=(5, 7), mode="nearest"),
                F.interpolate(y, size=(9, 14), mode="bicubic", align_corners=False),
                F.adaptive_avg_pool2d(y, 1).flatten(1).softmax(-1))


def test_onnx_interpolate_modes(tmp_path):
    torch.manual_seed(0)
    net = check_onnx(Interpolations().eval(), torch.randn(2, 3, 8, 6), tmp_path, dynamic_batch=True)
    assert sum(net.get_layer(i).type == t.LayerType.RESIZE for i in range(net.num_layers)) == 5


def test_marked_run_drops_and_overwrites_only_dead_values():
    """With marked outputs, values go once their last reader ran and ReLU / residual sums write into inputs no
    later layer reads: outputs equal PyTorch's, the caller's input and values still read elsewhere intact."""
    n, x = Net(), rand(1, 4, 5, 5, seed=1)
    w, b = rand(4, 4, 3, 3, seed=2), rand(4, seed=3)
    inp = n.input(x.shape)
    conv = n.net.add_convolution_nd(inp, 4, (3, 3), n.w(w), n.w(b))
    conv.padding_nd = (1, 1)
    relu = lambda v: n.net.add_activation(v, t.ActivationType.RELU).get_output(0)  # noqa: E731
    add = lambda a, c: n.net.add_elementwise(a, c, t.ElementWiseOperation.SUM).get_output(0)  # noqa: E731
    s = add(relu(conv.get_output(0)), inp)          # conv output, then the ReLU's, dead after use
    view = n.net.add_identity(s).get_output(0)       # shares s's buffer while s is read again below
    out, direct = add(relu(s), view), relu(inp)      # the network input is never written into
    given = x.copy()
    got = n.run({"x": given}, out, direct)
    ref_s = torch.relu(F.conv2d(tt(x), tt(w), tt(b), padding=1)) + tt(x)
    close(got[0], torch.relu(ref_s) + ref_s)
    close(got[1], torch.relu(tt(x)))
    np.testing.assert_array_equal(given, x)


def test_value_passed_on_by_a_kernel_is_not_overwritten():
    """A scale with no coefficients hands its input on as its output: a ReLU on that output, its last reader,
    must not write into the conv output the residual sum still reads."""
    n, x = Net(), rand(1, 4, 5, 5, seed=1)
    w, b = rand(4, 4, 3, 3, seed=2), rand(4, seed=3)
    conv = n.net.add_convolution_nd(n.input(x.shape), 4, (3, 3), n.w(w), n.w(b))
    conv.padding_nd = (1, 1)
    c = conv.get_output(0)
    empty = t.Weights(t.float32)
    same = n.net.add_scale(c, t.ScaleMode.UNIFORM, empty, empty, empty).get_output(0)
    relu = n.net.add_activation(same, t.ActivationType.RELU).get_output(0)
    out = n.net.add_elementwise(relu, c, t.ElementWiseOperation.SUM).get_output(0)
    ref = F.conv2d(tt(x), tt(w), tt(b), padding=1)
    close(n.run({"x": x}, out), torch.relu(ref) + ref)


def test_pointwise_convolution_bias_on_one_thread():
    """On one thread a 1x1 convolution over a large map adds its bias after the GEMM: still torch's values."""
    n, x = Net(), rand(1, 8, 56, 56, seed=1)
    w, b = rand(16, 8, 1, 1, seed=2), rand(16, seed=3)
    conv = n.net.add_convolution_nd(n.input(x.shape), 16, (1, 1), n.w(w), n.w(b))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = n.run({"x": x}, conv.get_output(0))
    finally:
        torch.set_num_threads(threads)
    close(got, F.conv2d(tt(x), tt(w), tt(b)))
