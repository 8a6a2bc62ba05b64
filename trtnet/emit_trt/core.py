"""Emits a recorded graph through TensorRT's network definition API: the driver and what emitters share.

Every TensorRT layer and output tensor is named after its graph node (helper layers get `node/what`), so
engine bindings, TensorRT logs and `trtnet.check` tables use the model's names. Symbolic sizes become shape
tensors computed from the network inputs' run-time shapes (`Emission.dim`).
"""
import fnmatch

import ml_dtypes
import numpy as np

from ..backend import trt
from ..errors import TrtnetError
from ..registry import Registry
from ..shape import Expr, is_static

EMIT = Registry("TensorRT emitter")   # graph op name -> fn(emission, node, *input tensors)
emitter = EMIT.register


HALF = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16}   # half precisions: numpy type of the weights
NP_TYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "int32": np.int32, "int64": np.int64,
            "bool": np.bool_, "uint8": np.uint8}


class Emission:
    """The network being filled, with the numpy arrays TensorRT reads until the build ends."""

    def __init__(self, network, graph, float_type=np.float32):
        self.network, self.graph, self.t, self.keep, self.tensors = network, graph, trt(), [], {}
        self.float, self.multi, self._dims, self._shapes, self.used = float_type, {}, {}, {}, set()
        self.casts, self.half = {}, None   # half: the network's half precision, "fp16", "bf16" or None

    # types and constants --------------------------------------------------------------------
    def dtype(self, name):
        """TensorRT type of a graph dtype; floats follow the network's precision (fp16 or bf16 mode)."""
        if name in ("float32", "float16") and self.float != np.float32:
            name = np.dtype(self.float).name
        t = self.t
        return {"float32": t.float32, "float16": t.float16, "bfloat16": t.bfloat16, "int8": t.int8,
                "int32": t.int32, "int64": t.int64, "bool": t.bool, "uint8": t.uint8}[name]

    def np_type(self, name):
        """numpy type of a graph dtype's constants, as `dtype` types its tensors (a float16 tensor stays float16 in
        an fp32 network)."""
        if name in ("float32", "float16") and self.float != np.float32:
            return self.float
        return ml_dtypes.bfloat16 if name == "bfloat16" else NP_TYPES[name]

    def weights(self, arr, dtype=None):
        """TensorRT weights; floating ones in the network's precision (a strongly typed network takes the
        type of its weights)."""
        arr = np.ascontiguousarray(arr, dtype=dtype or self.float)
        self.keep.append(arr)
        if arr.dtype == ml_dtypes.bfloat16:   # TensorRT's Weights(array) knows no ml_dtypes type
            return self.t.Weights(self.t.bfloat16, arr.ctypes.data, arr.size)
        return self.t.Weights(arr)

    def no_weights(self):
        return self.t.Weights(self.dtype("float32"))

    def constant(self, arr, name, dtype=None, helper=False):
        """A constant tensor; float arrays in the network's precision unless `dtype` (numpy) says otherwise."""
        arr = np.asarray(arr)
        if dtype is None:
            dtype = self.float if arr.dtype.kind == "f" else arr.dtype
        layer = self.network.add_constant(arr.shape, self.weights(arr, dtype))
        return self.helper(layer, name) if helper else self.named(layer, name)

    def named(self, layer, name, index=0):
        self.used.add(name)
        layer.name = name
        out = layer.get_output(index)
        out.name = name
        return out

    def helper(self, layer, name):
        """Name a helper layer `name` (unique in the network) and return its output."""
        base, i = name, 0
        while name in self.used or name in self.graph._names:
            i += 1
            name = f"{base}_{i}"
        return self.named(layer, name)

    # run-time sizes ----------------------------------------------------------------------------
    def ints(self, values, name):
        return self.constant(np.array(values, np.int64).reshape(-1), name, np.int64, helper=True)

    def dim(self, d, name):
        """A 1-element int64 tensor holding size `d` (an int or a symbolic Expr) at run time."""
        key = d._key if isinstance(d, Expr) else ("int", int(d))
        if key not in self._dims:
            self._dims[key] = self._make_dim(d, name)
        return self._dims[key]

    def _make_dim(self, d, name):
        E = self.t.ElementWiseOperation
        if is_static(d):
            return self.ints([d], f"{name}/{d}")
        out = None
        for term, coeff in d.terms:
            v = self._term(term, name)
            if coeff != 1:
                v = self._binary(v, self.ints([coeff], f"{name}/{coeff}"), E.PROD, f"{name}/scale")
            out = v if out is None else self._binary(out, v, E.SUM, f"{name}/sum")
        if d.const:
            out = self._binary(out, self.ints([d.const], f"{name}/{d.const}"), E.SUM, f"{name}/plus")
        return out

    def _term(self, term, name):
        E = self.t.ElementWiseOperation
        if isinstance(term, str):
            inp, axis = self.graph.dims[term]
            if inp not in self._shapes:
                self._shapes[inp] = self.helper(self.network.add_shape(self.tensors[inp]), f"{inp}/shape")
            return self.helper(self.network.add_slice(self._shapes[inp], (axis,), (1,), (1,)), f"{inp}/{term}")
        op, a, b = term
        a, b = self.dim(a, name), self.dim(b, name)
        return self._binary(a, b, E.PROD if op == "*" else E.FLOOR_DIV, f"{name}/{'mul' if op == '*' else 'div'}")

    def _binary(self, a, b, op, name):
        return self.helper(self.network.add_elementwise(a, b, op), name)

    def shape_tensor(self, dims, name):
        """A 1-D int64 tensor of `dims` (ints, -1 or Exprs), constant where every size is static."""
        if all(is_static(d) for d in dims):
            return self.ints(list(dims), f"{name}/dims")
        parts = [self.dim(d, name) for d in dims]
        return self.helper(self.network.add_concatenation(parts), f"{name}/dims")

    def reshape(self, x, dims, name, final=True):
        """x reshaped to `dims` (ints, one -1, Exprs): static dims through reshape_dims, else a shape tensor."""
        layer = self.network.add_shuffle(x)
        layer.zero_is_placeholder = False
        if all(is_static(d) for d in dims):
            layer.reshape_dims = tuple(int(d) for d in dims)
        else:
            layer.set_input(1, self.shape_tensor(dims, name))
        return self.named(layer, name) if final else self.helper(layer, name)

    def unsqueeze_to(self, x, node, rank, name):
        """Prepend unit dimensions: TensorRT broadcasts only between tensors of equal rank."""
        if node.rank == rank:
            return x
        return self.reshape(x, (1,) * (rank - node.rank) + tuple(node.shape), name, final=False)


def matching(graph, patterns, what):
    """Names of the graph's layers matching any of the fnmatch `patterns`; a pattern matching none is an error."""
    names = [n.name for n in graph.nodes if n.op != "input"]
    out = set()
    for p in patterns:
        hit = fnmatch.filter(names, p)
        if not hit:
            raise TrtnetError(f"{what} {p!r} matches no layer of '{graph.name}' (layers: "
                              f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
        out.update(hit)
    return out


def half_precision(half):
    """None, "fp16" or "bf16" from a half-precision setting (True is fp16, as the former fp16 flag)."""
    half = "fp16" if half is True else half or None
    if half not in (None, *HALF):
        raise TrtnetError(f"half precision {half!r}: expected fp16 or bf16")
    return half


def emit(graph, network, half=None, keep_fp32=(), debug=()):
    """Fill `network` from `graph`; returns the Emission, which must outlive the engine build.

    With `half` ("fp16" or "bf16"), weights are stored in that precision and the network computes in it, while
    its float inputs and outputs stay float32 (cast layers `NAME/fp16` and `NAME/fp32`, `NAME/bf16` for bf16),
    so callers' buffers do not change. Layers matching `keep_fp32` (fnmatch patterns) keep fp32 weights and
    compute in fp32 there: a strongly typed network takes precision from tensor types, so their half inputs
    are cast up (`NAME/to_fp32`) and their outputs cast down (`NAME/to_fp16`) only where a half layer reads
    them. Outputs of layers matching `debug` become TensorRT debug tensors, which an execution context can dump
    without changing fusion."""
    half = half_precision(half)
    low = HALF.get(half, np.float32)
    e = Emission(network, graph, low)
    e.half = half
    low_t = e.dtype("float32")
    keep = matching(graph, keep_fp32, "--keep-fp32") if half else set()
    wide = {}   # name -> float32 tensor of a kept layer (or a network input) in a half network
    for n in graph.nodes:
        if n.op not in EMIT:
            raise NotImplementedError(f"layer '{n.name}': no TensorRT emitter for op '{n.op}'")
        kept = n.name in keep or n.op == "item" and n.inputs[0].name in wide
        e.float = np.float32 if kept else low
        out = EMIT[n.op](e, n, *(_typed(e, i.name, wide, kept, low_t, half) for i in n.inputs))
        if isinstance(out, tuple):
            e.multi[n.name], out = out, out[0]
        if kept:
            wide[n.name] = out
        if half and n.op == "input" and n.dtype == "float32":
            wide[n.name], out = out, e.named(network.add_cast(out, low_t), f"{n.name}/{half}")
        e.tensors[n.name] = out
    e.float = low
    for o in graph.outputs:
        if o.op == "input":
            raise TrtnetError(f"output '{o.name}' is a network input unchanged, which TensorRT cannot mark as an "
                              f"output; pass it through tn.identity(x, name=...) to give the output a name of its own")
        y = e.tensors[o.name]
        if half and o.dtype in ("float32", "float16") and y.dtype == low_t:
            y.name = f"{o.name}/{half}"
            cast = network.add_cast(y, e.t.float32)
            cast.name = f"{o.name}/fp32"
            y = cast.get_output(0)
            y.name = o.name
        network.mark_output(y)
    for name in sorted(matching(graph, debug, "--debug-tensors")):
        network.mark_debug(e.tensors[name])
    return e


def _typed(e, name, wide, fp32, low_t, half):
    """Input `name` for a layer computing in fp32 (kept) or in half precision (`low_t`); each cast made once."""
    t = e.t
    if fp32:
        x = wide.get(name, e.tensors[name])
        to = t.float32 if x.dtype == low_t else None
    else:
        x = e.tensors[name]
        to = low_t if name in wide and x.dtype == t.float32 else None
    if to is None:
        return x
    if (name, fp32) not in e.casts:
        e.casts[name, fp32] = e.helper(e.network.add_cast(x, to), f"{name}/to_{'fp32' if fp32 else half}")
    return e.casts[name, fp32]


@emitter("input")
def _input(e, n):
    dims = tuple(-1 if not is_static(d) else int(d) for d in n.shape)
    dtype = e.t.float32 if n.dtype == "float32" else e.dtype(n.dtype)
    return e.network.add_input(n.name, dtype, dims)


@emitter("item")
def _item(e, n, first):
    return e.multi[n.inputs[0].name][n.attrs["index"]]
