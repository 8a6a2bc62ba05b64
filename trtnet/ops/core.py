"""What every op is built from: the op declaration, the layer being recorded, and shared shape rules.

`@op("name", attr=type, ...)` declares the graph op names a public function records and the attributes each
node of them holds. Each declared name must have a TensorRT emitter (`trtnet.emit_trt`), a PyTorch reference
(`trtnet.reference`) and test cases (`tests/op_cases.py`); `tests/test_op_table.py` fails when one of them
lacks a piece.
"""
import functools
import inspect
import math
from collections import namedtuple

import numpy as np

from ..graph import DTYPES, PUBLIC, GraphError, Node, made_up, recording, user_line
from ..registry import InternalError, Registry, place
from ..shape import Expr, fmt_shape, is_static, same
from ..weights import MissingWeightError, WeightMap

OPS = Registry("op")
ValuesIndices = namedtuple("ValuesIndices", "values indices")   # torch.return_types of max, min, topk, sort   # graph op name -> its declaration (OpDecl)


class OpDecl:
    """An op's declaration: its attributes' types, in the order print(graph) shows them, and where it is made.
    Every node of the op holds exactly these attributes."""

    def __init__(self, name, fn, attrs):
        self.name, self.where = name, place(fn)
        self.attrs = {k: _types(name, k, v) for k, v in attrs.items()}

    def check(self, attrs):
        """`attrs` in declaration order; an attribute undeclared, missing or of another type is refused."""
        for k in attrs:
            if k not in self.attrs:
                self.fail(f"records attribute '{k}', which its declaration lacks")
        for k, types in self.attrs.items():
            if k not in attrs:
                self.fail(f"does not record its declared attribute '{k}'")
            v = attrs[k]
            if not isinstance(v, types) or isinstance(v, bool) and bool not in types:
                self.fail(f"attribute '{k}' is {v!r} of type {type(v).__name__}, declared "
                          f"{' or '.join(t.__name__ for t in types)}")
        return {k: attrs[k] for k in self.attrs}

    def fail(self, msg):
        raise InternalError(f"op '{self.name}' (declared at {self.where}) {msg}")


def _types(op_name, attr, spec):
    """A declared type as a tuple of types: a type, or a tuple of them where None allows None."""
    types = tuple(type(None) if t is None else t for t in (spec if isinstance(spec, tuple) else (spec,)))
    if not types or not all(isinstance(t, type) for t in types):
        raise InternalError(f"op '{op_name}': attribute '{attr}' is declared {spec!r}, not a type or tuple of types")
    return types


def naming(fn):
    """`fn`, a layer-API function, telling the graph which name the user gave a call: `name`, else the prefix of
    a weight view it takes (`conv(x, w["conv1"])`), else none (its nodes' names are made up: Graph.automatic)."""
    params = list(inspect.signature(fn).parameters)
    if "name" not in params:
        return fn
    pos = params.index("name")

    @functools.wraps(fn)
    def call(*args, **kwargs):
        given = kwargs["name"] if "name" in kwargs else args[pos] if len(args) > pos else None
        if given is None:
            given = next((a.prefix for a in (*args, *kwargs.values()) if isinstance(a, WeightMap) and a.prefix), None)
        with recording(given):
            return fn(*args, **kwargs)
    return call


def op(*names, **attrs):
    """Declare that the decorated public function records graph ops `names` (default: its own name), whose
    nodes hold `attrs` (name=type, or name=(type, ..., None) where several types or None are allowed)."""
    def register(fn):
        fn = naming(fn)
        for n in names or (fn.__name__,):
            OPS.add(n, OpDecl(n, fn, attrs), fn)
        if not fn.__name__.startswith("_"):
            PUBLIC[fn.__name__] = fn
        return fn
    return register


def public(fn):
    """A public function that records ops declared elsewhere (relu6 records clamp)."""
    fn = PUBLIC[fn.__name__] = naming(fn)
    return fn


def alias(fn, name):
    """A second public name for `fn` (torch's own aliases: concat/cat, clip/clamp)."""
    PUBLIC[name] = fn
    return fn


class Layer:
    """One op being recorded: its name, its error messages and its weights."""

    def __init__(self, op_name, x, name=None):
        if op_name not in OPS:
            raise InternalError(f"op '{op_name}' is not declared")
        self.op, self.graph = op_name, x.graph
        self.name = self.graph.unique(name or op_name)
        if made_up(name):
            self.graph.automatic.add(self.name)

    def fail(self, msg):
        raise GraphError(f"{user_line()}: layer '{self.name}' ({self.op}): {msg}")

    def param(self, w, key, shape, required=True, dtype=np.float32):
        """The weight `key` of view `w`, checked against `shape` (flat .wts arrays are reshaped)."""
        try:
            arr = w[key] if required else w.get(key)
        except MissingWeightError as e:
            self.fail(str(e))
        if arr is None:
            return None
        shape = tuple(int(s) for s in shape)
        if arr.dtype != dtype and dtype is not None:
            arr = arr.astype(dtype)
        if arr.shape == shape:
            return arr
        if arr.ndim == 1 and arr.size == math.prod(shape):
            return arr.reshape(shape)
        self.fail(f"weight '{w.full(key)}' has shape {tuple(arr.shape)} ({arr.size} values), expected {shape} "
                  f"({math.prod(shape)} values)")

    def emit(self, inputs, shape, attrs=None, params=None, dtype=None):
        return self.graph.add(self.op, inputs, shape, OPS[self.op].check(attrs or {}), params, self.name, dtype)

    def emit_multi(self, inputs, outs, attrs=None, params=None):
        """An op with several outputs: `outs` is [(shape, dtype), ...]; returns one node per output. The first
        node is the op itself; the others are `item` nodes reading output k of it."""
        (shape, dtype), rest = outs[0], outs[1:]
        attrs = OPS[self.op].check(dict(attrs or {}, outputs=len(outs)))
        first = self.graph.add(self.op, inputs, shape, attrs, params, self.name, dtype)
        nodes = [first]
        for k, (shape, dtype) in enumerate(rest, 1):
            nodes.append(self.graph.add("item", [first], shape, {"index": k}, None, f"{self.name}.{k}", dtype))
        return nodes

    # shared checks ------------------------------------------------------------------------
    def axis(self, x, dim):
        r = x.rank
        if not isinstance(dim, (int, np.integer)) or not -max(r, 1) <= dim < max(r, 1):
            self.fail(f"dim {dim} is out of range for shape {fmt(x.shape)}")
        return int(dim) % max(r, 1)

    def axes(self, x, dim):
        """Normalised, sorted, distinct axes; None means all of them."""
        if dim is None:
            return tuple(range(x.rank))
        dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
        out = sorted({self.axis(x, d) for d in dims})
        if len(out) != len(dims):
            self.fail(f"dims {dims} repeat an axis")
        return tuple(out)

    def rank(self, x, *ranks):
        if x.rank not in ranks:
            want = " or ".join(str(r) for r in ranks)
            self.fail(f"expects a rank-{want} input, got '{x.name}' of shape {fmt(x.shape)}")
        return x.shape

    def float_input(self, x):
        if not x.is_float:
            self.fail(f"expects a floating-point input, got '{x.name}' of dtype {x.dtype} (use .float())")


def fmt(shape):
    return fmt_shape(shape)


def ntuple(v, n):
    """An int or a sequence as an n-tuple of ints (PyTorch's `_pair`/`_triple`)."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(i) for i in v)
    if len(v) != n:
        raise GraphError(f"{user_line()}: expected {n} values, got {v}")
    return v


def broadcast(L, a, b):
    """NumPy/PyTorch broadcasting of two shapes, symbolic dims included (a size-1 dim stretches)."""
    ra, rb = a[::-1], b[::-1]
    out = []
    for i in range(max(len(a), len(b))):
        da = ra[i] if i < len(ra) else 1
        db = rb[i] if i < len(rb) else 1
        if same(da, 1):
            out.append(db)
        elif same(db, 1) or same(da, db):
            out.append(da)
        elif same(da, db) is None:   # sizes known only at run time: the static one, else the first
            out.append(da if is_static(da) else db)
        else:
            L.fail(f"shapes {fmt(a)} and {fmt(b)} do not broadcast (dimension {max(len(a), len(b)) - 1 - i}: "
                   f"{da} vs {db})")
    return tuple(out[::-1])


_PROMOTE = {"bool": 0, "uint8": 1, "int8": 1, "int32": 2, "int64": 3, "bfloat16": 4, "float16": 4, "float32": 5}


def promote(a, b):
    """PyTorch's result type of two tensors (the classes trtnet handles)."""
    if a == b:
        return a
    return a if _PROMOTE[a] > _PROMOTE[b] else b


_CATEGORY = {"bool": 0, "uint8": 1, "int8": 1, "int32": 1, "int64": 1, "bfloat16": 2, "float16": 2, "float32": 2}


def result_type(a, b):
    """torch's result type of tensors `a` and `b`: a 0-D tensor beside one with dims decides it only where it
    raises the category (bool < integer < float), as a Python scalar does (float16 * a 0-D float32 is float16)."""
    if bool(a.rank) != bool(b.rank):
        dims, zero = (a, b) if a.rank else (b, a)
        return zero.dtype if _CATEGORY[zero.dtype] > _CATEGORY[dims.dtype] else dims.dtype
    return promote(a.dtype, b.dtype)


def scalar_dtype(value, like):
    """A Python scalar's dtype next to a tensor, as torch treats it: it does not widen the tensor's type
    within its category, and a float scalar next to an integer tensor gives float32."""
    if isinstance(value, (bool, np.bool_)):
        return like
    if isinstance(value, (int, np.integer, Expr)):     # a run-time size is an int too
        return like if like != "bool" else "int64"
    return like if like in ("float32", "float16", "bfloat16") else "float32"


def const(g, value, dtype, name=None):
    """A constant operand of `dtype`."""
    if dtype not in DTYPES:
        raise GraphError(f"{user_line()}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    arr = np.asarray(value, dtype=_np_dtype(dtype))
    return g.add("const", [], arr.shape, params={"value": arr}, name=name or "const", dtype=dtype)


def _np_dtype(dtype):
    return {"bfloat16": np.float32}.get(dtype, np.dtype(dtype))


def static_int(L, v, what):
    if not is_static(v):
        L.fail(f"{what} must be known when recording, got the run-time size '{v}'")
    return int(v)
