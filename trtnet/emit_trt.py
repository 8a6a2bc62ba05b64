"""Emits a recorded graph through TensorRT's network definition API, one function per op.

Every TensorRT layer and output tensor is named after its graph node (helper layers get
`node/what`), so engine bindings, TensorRT logs and `trtnet.check` tables use the model's names.
"""
import numpy as np

from .backend import trt

EMIT = {}


def emitter(*ops):
    def register(fn):
        for op in ops:
            EMIT[op] = fn
        return fn
    return register


class Emission:
    """The network being filled, with the numpy arrays TensorRT reads until the build ends."""

    def __init__(self, network, float_type=np.float32):
        self.network, self.t, self.keep, self.tensors, self.float = network, trt(), [], {}, float_type

    def weights(self, arr, dtype=None):
        """TensorRT weights; floating ones in the network's precision (a strongly typed network takes the
        type of its weights)."""
        arr = np.ascontiguousarray(arr, dtype=dtype or self.float)
        self.keep.append(arr)
        return self.t.Weights(arr)

    def no_weights(self):
        return self.t.Weights(self.t.float16 if self.float == np.float16 else self.t.float32)

    def constant(self, arr, name):
        arr = np.asarray(arr, dtype=np.float32)
        layer = self.network.add_constant(arr.shape, self.weights(arr))
        return self.named(layer, name)

    def named(self, layer, name):
        layer.name = name
        out = layer.get_output(0)
        out.name = name
        return out

    def runtime_dims(self, like, keep, rest, name):
        """A shape tensor: `like`'s first `keep` dimensions at run time (the dynamic batch), then `rest`."""
        shape = self.named(self.network.add_shape(like), f"{name}/shape")
        head = self.named(self.network.add_slice(shape, (0,), (keep,), (1,)), f"{name}/batch")
        tail = self.named(self.network.add_constant((len(rest),), self.weights(np.array(rest, np.int64), np.int64)),
                          f"{name}/rest")
        return self.named(self.network.add_concatenation([head, tail]), f"{name}/dims")

    def unsqueeze_to(self, x, rank, name):
        """Prepend unit dimensions: TensorRT broadcasts only between tensors of equal rank."""
        if len(x.shape) == rank:
            return x
        layer = self.network.add_shuffle(x)
        layer.reshape_dims = (1,) * (rank - len(x.shape)) + tuple(x.shape)
        return self.named(layer, name)


@emitter("input")
def _input(e, n):
    dtype = {"float32": e.t.float32, "float16": e.t.float16}[n.dtype]
    return e.network.add_input(n.name, dtype, n.shape)


@emitter("conv")
def _conv(e, n, x):
    a, p = n.attrs, n.params
    bias = e.weights(p["bias"]) if "bias" in p else e.no_weights()
    layer = e.network.add_convolution_nd(x, a["out"], a["kernel"], e.weights(p["weight"]), bias)
    layer.stride_nd, layer.padding_nd, layer.dilation_nd = a["stride"], a["padding"], a["dilation"]
    layer.num_groups = a["groups"]
    return e.named(layer, n.name)


@emitter("max_pool", "avg_pool")
def _pool(e, n, x):
    a = n.attrs
    kind = e.t.PoolingType.MAX if a["kind"] == "max" else e.t.PoolingType.AVERAGE
    layer = e.network.add_pooling_nd(x, kind, a["kernel"])
    layer.stride_nd = a["stride"]
    # PyTorch's ceil_mode sizes, reached exactly with extra bottom/right padding under round-down.
    post = [max(p, (o - 1) * s + k - i - p)
            for o, s, k, i, p in zip(n.shape[2:], a["stride"], a["kernel"], x.shape[2:], a["padding"])]
    if a["kind"] == "avg" and a["count_include_pad"] and any(q > p for q, p in zip(post, a["padding"])):
        raise NotImplementedError(f"layer '{n.name}': average pooling with ceil_mode and count_include_pad=True "
                                  "has windows past the padding, which TensorRT cannot divide as PyTorch does")
    layer.pre_padding, layer.post_padding = a["padding"], post
    layer.average_count_excludes_padding = not a["count_include_pad"]
    return e.named(layer, n.name)


@emitter("adaptive_avg_pool")
def _adaptive(e, n, x):
    (h, w), (oh, ow) = x.shape[2:], n.attrs["size"]
    if (oh, ow) == (1, 1):
        return e.named(e.network.add_reduce(x, e.t.ReduceOperation.AVG, 0b1100, True), n.name)
    if h % oh == 0 and w % ow == 0:
        layer = e.network.add_pooling_nd(x, e.t.PoolingType.AVERAGE, (h // oh, w // ow))
        layer.stride_nd = (h // oh, w // ow)
        return e.named(layer, n.name)
    # Uneven windows: averaging is separable, so rows then columns are two products with constant matrices.
    M = e.t.MatrixOperation.NONE
    cols = e.constant(_window_matrix(w, ow).T[None, None], f"{n.name}/cols")
    rows = e.constant(_window_matrix(h, oh)[None, None], f"{n.name}/rows")
    y = e.named(e.network.add_matrix_multiply(x, M, cols, M), f"{n.name}/pool_w")
    return e.named(e.network.add_matrix_multiply(rows, M, y, M), n.name)


def _window_matrix(size, out):
    """Row i averages PyTorch's adaptive window [floor(i*size/out), ceil((i+1)*size/out))."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        lo, hi = i * size // out, -(-(i + 1) * size // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _act_layer(e, x, kind, alpha=None, beta=None):
    layer = e.network.add_activation(x, getattr(e.t.ActivationType, kind))
    if alpha is not None:
        layer.alpha = alpha
    if beta is not None:
        layer.beta = beta
    return layer


_DIRECT = {"relu": "RELU", "sigmoid": "SIGMOID", "tanh": "TANH", "leaky_relu": "LEAKY_RELU", "clip": "CLIP",
           "gelu": "GELU_ERF", "gelu_tanh": "GELU_TANH", "hardsigmoid": "HARD_SIGMOID"}


@emitter(*_DIRECT)
def _activation(e, n, x):
    a = n.attrs
    alpha, beta = (1 / 6, 0.5) if a["kind"] == "hardsigmoid" else (a["alpha"], a["beta"])
    return e.named(_act_layer(e, x, _DIRECT[a["kind"]], alpha, beta), n.name)


@emitter("silu", "hardswish")
def _gated(e, n, x):
    """x * sigmoid(x) and x * hardsigmoid(x): TensorRT has no single activation for either."""
    gate = _act_layer(e, x, "SIGMOID") if n.op == "silu" else _act_layer(e, x, "HARD_SIGMOID", 1 / 6, 0.5)
    g = e.named(gate, f"{n.name}/gate")
    return e.named(e.network.add_elementwise(x, g, e.t.ElementWiseOperation.PROD), n.name)


@emitter("fc")
def _fc(e, n, x):
    r, p = len(x.shape), n.params
    w = e.constant(p["weight"].reshape((1,) * (r - 2) + p["weight"].shape), f"{n.name}/weight")
    mm = e.network.add_matrix_multiply(x, e.t.MatrixOperation.NONE, w, e.t.MatrixOperation.TRANSPOSE)
    if "bias" not in p:
        return e.named(mm, n.name)
    y = e.named(mm, f"{n.name}/matmul")
    b = e.constant(p["bias"].reshape((1,) * (r - 1) + p["bias"].shape), f"{n.name}/bias")
    return e.named(e.network.add_elementwise(y, b, e.t.ElementWiseOperation.SUM), n.name)


@emitter("softmax")
def _softmax(e, n, x):
    layer = e.network.add_softmax(x)
    layer.axes = 1 << n.attrs["axis"]
    return e.named(layer, n.name)


@emitter("bn")
def _bn(e, n, x):
    p = n.params
    scale = p["weight"] / np.sqrt(p["running_var"] + n.attrs["eps"])
    shift = p["bias"] - p["running_mean"] * scale
    layer = e.network.add_scale_nd(x, e.t.ScaleMode.CHANNEL, e.weights(shift), e.weights(scale), e.no_weights(), 1)
    return e.named(layer, n.name)


@emitter("add", "sub", "mul")
def _elementwise(e, n, a, b):
    op = {"add": "SUM", "sub": "SUB", "mul": "PROD"}[n.op]
    r = len(n.shape)
    a, b = (e.unsqueeze_to(v, r, f"{n.name}/{i}") for i, v in (("lhs", a), ("rhs", b)))
    return e.named(e.network.add_elementwise(a, b, getattr(e.t.ElementWiseOperation, op)), n.name)


@emitter("const")
def _const(e, n):
    return e.constant(n.params["value"], n.name)


@emitter("concat")
def _concat(e, n, *xs):
    layer = e.network.add_concatenation(list(xs))
    layer.axis = n.attrs["axis"]
    return e.named(layer, n.name)


@emitter("flatten", "reshape")
def _reshape(e, n, x):
    layer = e.network.add_shuffle(x)
    layer.reshape_dims = (0, *n.shape[1:])  # 0 copies the dynamic batch dimension
    return e.named(layer, n.name)


@emitter("upsample")
def _upsample(e, n, x):
    a = n.attrs
    layer = e.network.add_resize(x)
    if a["scales"]:
        layer.scales = [1.0, 1.0, *a["scales"]]
    else:  # an exact output size, as F.interpolate(size=...) has: coordinates then scale by in/out
        layer.set_input(1, e.runtime_dims(x, 2, a["size"], n.name))
    R = e.t.ResizeCoordinateTransformation
    if a["mode"] == "nearest":  # PyTorch 'nearest': src = floor(dst / scale)
        layer.resize_mode = e.t.InterpolationMode.NEAREST
        layer.coordinate_transformation = R.ASYMMETRIC
        layer.nearest_rounding = e.t.ResizeRoundMode.FLOOR
    else:
        layer.resize_mode = e.t.InterpolationMode.LINEAR
        layer.coordinate_transformation = R.ALIGN_CORNERS if a["align_corners"] else R.HALF_PIXEL
    return e.named(layer, n.name)


@emitter("permute")
def _permute(e, n, x):
    layer = e.network.add_shuffle(x)
    layer.first_transpose = n.attrs["dims"]
    return e.named(layer, n.name)


@emitter("slice", "select")
def _index(e, n, x):
    """A gather of constant indices: unlike ISliceLayer it needs no runtime size for the dynamic batch."""
    idx = n.attrs["index"]
    layer = e.network.add_constant(idx.shape, e.weights(idx, np.int32))
    indices = e.named(layer, f"{n.name}/indices")
    return e.named(e.network.add_gather(x, indices, n.attrs["axis"]), n.name)


@emitter("matmul")
def _matmul(e, n, a, b):
    r = len(n.shape)
    a, b = (e.unsqueeze_to(v, r, f"{n.name}/{i}") for i, v in (("lhs", a), ("rhs", b)))
    M = e.t.MatrixOperation
    return e.named(e.network.add_matrix_multiply(a, M.NONE, b, M.TRANSPOSE if n.attrs["transpose_b"] else M.NONE), n.name)


@emitter("layer_norm")
def _layer_norm(e, n, x):
    axis, r = n.attrs["axis"], len(n.shape)
    shape = [1] * r
    shape[axis] = n.shape[axis]
    scale = e.constant(n.params["weight"].reshape(shape), f"{n.name}/weight")
    bias = e.constant(n.params["bias"].reshape(shape), f"{n.name}/bias")
    layer = e.network.add_normalization(x, scale, bias, 1 << axis)
    layer.epsilon = n.attrs["eps"]
    return e.named(layer, n.name)


@emitter("expand_batch")
def _expand(e, n, c, like):
    """Slice with stride 0 on the batch axis, sized at run time from like's batch (a shape tensor)."""
    r = len(n.shape)
    layer = e.network.add_slice(c, (0,) * r, (1, *n.shape[1:]), (0,) + (1,) * (r - 1))
    layer.set_input(2, e.runtime_dims(like, 1, n.shape[1:], n.name))
    return e.named(layer, n.name)


@emitter("identity")
def _identity(e, n, x):
    return e.named(e.network.add_identity(x), n.name)


def emit(graph, network, fp16=False):
    """Fill `network` from `graph`; returns the Emission, which must outlive the engine build.

    With `fp16`, weights are stored in half precision and the network computes in it, while its inputs and
    outputs stay float32 (cast layers `NAME/fp16` and `NAME/fp32`), so callers' buffers do not change."""
    e = Emission(network, np.float16 if fp16 else np.float32)
    for n in graph.nodes:
        if n.op not in EMIT:
            raise NotImplementedError(f"layer '{n.name}': no TensorRT emitter for op '{n.op}'")
        out = EMIT[n.op](e, n, *(e.tensors[i.name] for i in n.inputs))
        if fp16 and n.op == "input":
            out = e.named(network.add_cast(out, e.t.float16), f"{n.name}/fp16")
        e.tensors[n.name] = out
    for o in graph.outputs:
        y = e.tensors[o.name]
        if fp16:
            y.name = f"{o.name}/fp16"
            cast = network.add_cast(y, e.t.float32)
            cast.name = f"{o.name}/fp32"
            y = cast.get_output(0)
            y.name = o.name
        network.mark_output(y)
    return e
