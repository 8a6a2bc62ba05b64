"""TensorRT emitters of explicit quantization: IQuantizeLayer + IDequantizeLayer pairs, and convolution /
matrix multiply layers whose weights are tensors (a dequantized constant TensorRT folds and fuses)."""
import numpy as np

from .conv import _nd
from .core import HALF, emitter

_TO = {"int8": "int8", "fp8": "fp8", "int4": "int4"}


def _scale(e, n, x):
    """The scale constant in x's type (a strongly typed network quantizes in the input's type)."""
    np_type = {e.t.float16: HALF["fp16"], e.t.bfloat16: HALF["bf16"]}.get(x.dtype, np.float32)
    return e.constant(n.params["scale"], f"{n.name}/scale", np_type, helper=True)


def _place(layer, n):
    """Per axis: the axis; blocks: block shape along the axis (a whole row or column across)."""
    a = n.attrs
    if a["block"] is not None:
        layer.block_shape = tuple(a["block"] if d == a["axis"] else 1 for d in range(len(n.shape)))
    elif a["axis"] is not None:
        layer.axis = a["axis"]


@emitter("fake_quant")
def _fake_quant(e, n, x):
    scale = _scale(e, n, x)
    q = e.network.add_quantize(x, scale, getattr(e.t, _TO[n.attrs["kind"]]))
    _place(q, n)
    dq = e.network.add_dequantize(e.helper(q, f"{n.name}/quantize"), scale, e.dtype(n.dtype))
    _place(dq, n)
    return e.named(dq, n.name)


@emitter("qconv")
def _qconv(e, n, x, w):
    a, p = n.attrs, n.params
    bias = e.weights(p["bias"]) if "bias" in p else e.no_weights()
    if len(a["kernel"]) == 1:   # run as 2-D on (N, C, L, 1), as conv does, the kernel (K, C, k, 1)
        w = e.reshape(w, (*n.inputs[1].shape, 1), f"{n.name}/kernel_2d", final=False)

    def add(x, widen):
        layer = e.network.add_convolution_nd(x, a["out"], widen(a["kernel"], 1), e.no_weights(), bias)
        layer.set_input(1, w)
        layer.stride_nd, layer.dilation_nd = widen(a["stride"], 1), widen(a["dilation"], 1)
        layer.pre_padding, layer.post_padding = widen(a["padding"], 0), widen(a["post_padding"], 0)
        layer.num_groups = a["groups"]
        return layer
    return _nd(e, n, x, add)


@emitter("qfc")
def _qfc(e, n, x, w):
    r, M = len(n.shape), e.t.MatrixOperation
    if r == 1:
        mm = e.network.add_matrix_multiply(w, M.NONE, x, M.VECTOR)
    else:
        if r > 2:
            w = e.reshape(w, (1,) * (r - 2) + tuple(n.inputs[1].shape), f"{n.name}/weight_rank", final=False)
        mm = e.network.add_matrix_multiply(x, M.NONE, w, M.TRANSPOSE)
    if "bias" not in n.params:
        return e.named(mm, n.name)
    y = e.helper(mm, f"{n.name}/matmul")
    b = e.constant(n.params["bias"].reshape((1,) * (r - 1) + (-1,)), f"{n.name}/bias")
    return e.named(e.network.add_elementwise(y, b, e.t.ElementWiseOperation.SUM), n.name)
