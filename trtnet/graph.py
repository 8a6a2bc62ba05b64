"""The recorded network: a list of `Node`s, each a tensor that knows its graph, op, inputs, shape and dtype.

Nothing here depends on TensorRT or torch: emitters (`emit_trt`, `reference`) walk `graph.nodes` in order.
A dimension is an int or a symbolic `Expr` over the inputs' named dimensions (see `trtnet.shape`), so any
axis may be dynamic; `Graph.ranges` holds each name's (min, opt, max) for optimization profiles.
"""
import functools
import os
import sys
from contextlib import contextmanager

import numpy as np

from .errors import TrtnetError
from .shape import Expr, evaluate, fmt_shape, numel, sym

_PKG = os.path.dirname(os.path.abspath(__file__))
DTYPES = ("float32", "float16", "bfloat16", "int8", "int32", "int64", "bool", "uint8")
BATCH = "N"
DEFAULT_BATCH = (1, 8, 32)


class GraphError(TrtnetError, ValueError):
    """A recording mistake, reported at the user's line with the layer it concerns."""


def user_line():
    """file:line of the innermost caller outside trtnet, so errors point at the model code."""
    frame = sys._getframe(1)
    while frame is not None and _inside(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    path = os.path.relpath(frame.f_code.co_filename)
    return f"{frame.f_code.co_filename if path.startswith('..') else path}:{frame.f_lineno}"


@functools.lru_cache(maxsize=None)
def _inside(filename):
    return os.path.abspath(filename).startswith(_PKG + os.sep)


PUBLIC = {}   # the layer API's functions by name, filled by trtnet.ops as it declares them: Node's operators
              # (`a + b`, `x[i]`, `x.sum()`) reach them here, and this module needs no import of trtnet.ops


_CALLS = []  # the name given to each layer-API call being recorded, outermost first (None: left out)


@contextmanager
def recording(given):
    """Nodes added inside are named by a layer-API call given the name `given` (None: left out): see made_up."""
    _CALLS.append(given)
    try:
        yield
    finally:
        _CALLS.pop()


def made_up(name):
    """Whether a node name was made up (`flatten`, `getitem_3`, a step's `const`) rather than given by the user,
    or derived from the name the user gave the outermost layer-API call (`fc`, `fc.bias`)."""
    if name is None or not _CALLS:
        return name is None
    return _CALLS[0] is None or not str(name).startswith(str(_CALLS[0]))


def _op(name):
    return PUBLIC[name]


class Node:
    """One recorded tensor. Operators follow torch: `a / b`, `a ** 2`, `-a`, `a @ b`, `a < b`, `x[:, 0, ..., None]`."""
    __slots__ = ("graph", "op", "name", "inputs", "attrs", "params", "shape", "dtype", "where", "index")
    __hash__ = object.__hash__   # comparisons record ops, as torch's do; identity stays the hash

    def __init__(self, graph, op, name, inputs, shape, dtype, attrs, params, where, index=0):
        self.graph, self.op, self.name, self.inputs = graph, op, name, list(inputs)
        self.shape, self.dtype, self.attrs, self.params, self.where = tuple(shape), dtype, attrs, params, where
        self.index = index  # which output of a multi-output op (topk, lstm) this node is

    @property
    def rank(self):
        return len(self.shape)

    ndim = rank

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    @property
    def is_float(self):
        return self.dtype in ("float32", "float16", "bfloat16")

    def num_params(self):
        return sum(int(np.size(p)) for p in self.params.values())

    def __add__(self, o): return _op("add")(self, o)
    def __radd__(self, o): return _op("add")(o, self)
    def __sub__(self, o): return _op("sub")(self, o)
    def __rsub__(self, o): return _op("sub")(o, self)
    def __mul__(self, o): return _op("mul")(self, o)
    def __rmul__(self, o): return _op("mul")(o, self)
    def __truediv__(self, o): return _op("div")(self, o)
    def __rtruediv__(self, o): return _op("div")(o, self)
    def __floordiv__(self, o): return _op("floor_divide")(self, o)
    def __rfloordiv__(self, o): return _op("floor_divide")(o, self)
    def __mod__(self, o): return _op("remainder")(self, o)
    def __rmod__(self, o): return _op("remainder")(o, self)
    def __pow__(self, o): return _op("pow")(self, o)
    def __rpow__(self, o): return _op("pow")(o, self)
    def __neg__(self): return _op("neg")(self)
    def __abs__(self): return _op("abs")(self)
    def __invert__(self): return _op("bitwise_not")(self)
    def __and__(self, o): return _op("bitwise_and")(self, o)
    def __or__(self, o): return _op("bitwise_or")(self, o)
    def __xor__(self, o): return _op("bitwise_xor")(self, o)
    def __rand__(self, o): return _op("bitwise_and")(o, self)
    def __ror__(self, o): return _op("bitwise_or")(o, self)
    def __rxor__(self, o): return _op("bitwise_xor")(o, self)
    def __rshift__(self, o): return _op("floor_divide")(self, 2 ** o if isinstance(o, int) else _op("pow")(2, o))
    def __lshift__(self, o): return _op("mul")(self, 2 ** o if isinstance(o, int) else _op("pow")(2, o))
    def __matmul__(self, o): return _op("matmul")(self, o)
    def __rmatmul__(self, o): return _op("matmul")(o, self)
    def __eq__(self, o): return _op("eq")(self, o)
    def __ne__(self, o): return _op("ne")(self, o)
    def __lt__(self, o): return _op("lt")(self, o)
    def __le__(self, o): return _op("le")(self, o)
    def __gt__(self, o): return _op("gt")(self, o)
    def __ge__(self, o): return _op("ge")(self, o)
    def __getitem__(self, key): return _op("getitem")(self, key)

    def __bool__(self):
        raise GraphError(f"{user_line()}: '{self.name}' is a tensor computed at run time; Python control flow "
                         "cannot branch on it (use tn.where)")

    def __iter__(self):
        """Like a torch tensor: the entries of dim 0 (`q, k, v = qkv`), which must be known when recording."""
        if not self.shape or isinstance(self.shape[0], Expr):
            raise GraphError(f"{user_line()}: '{self.name}' of shape {fmt_shape(self.shape)} cannot be iterated: "
                             "its first dim is not a fixed size")
        return iter(_op("unbind")(self, 0))

    def __len__(self):
        if not self.shape or isinstance(self.shape[0], Expr):
            raise GraphError(f"{user_line()}: len() of '{self.name}': its first dim is not a fixed size")
        return self.shape[0]

    def float(self): return _op("cast")(self, "float32")
    def half(self): return _op("cast")(self, "float16")
    def int(self): return _op("cast")(self, "int32")
    def long(self): return _op("cast")(self, "int64")
    def bool(self): return _op("cast")(self, "bool")
    def to(self, dtype): return _op("cast")(self, dtype)
    def type_as(self, other): return _op("cast")(self, other.dtype)

    def reshape(self, *shape): return _op("reshape")(self, _sizes(shape))
    view = reshape
    def reshape_as(self, other): return _op("reshape")(self, other.shape)
    view_as = reshape_as
    def permute(self, *dims): return _op("permute")(self, _sizes(dims))
    def expand(self, *sizes): return _op("expand")(self, _sizes(sizes))

    def dim(self): return self.rank
    def numel(self): return numel(self.shape)
    def contiguous(self): return self   # layout is TensorRT's business: torch's copies are identities here
    clone = detach = contiguous

    def new_full(self, size, fill_value, dtype=None): return _op("full")(size, fill_value, self, dtype)
    def new_zeros(self, size, dtype=None): return _op("zeros")(size, self, dtype)
    def new_ones(self, size, dtype=None): return _op("ones")(size, self, dtype)

    def __repr__(self):
        return f"<{self.name}: {self.op} -> {fmt_shape(self.shape)} {self.dtype}>"


def _sizes(args):
    """Sizes given as torch takes them: `x.view(2, -1)` or `x.view((2, -1))`."""
    return args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


# torch.Tensor methods that are the layer API's function of the same name with the tensor first (`x.max(1)`
# is tn.max(x, 1), a (values, indices) pair)
METHODS = (
    "abs", "neg", "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
    "cosh", "erf", "floor", "ceil", "round", "trunc", "sign", "isnan", "isinf", "logical_not", "logical_and",
    "logical_or", "logical_xor", "relu", "sigmoid", "tanh", "add", "sub", "mul", "div", "pow", "remainder",
    "floor_divide", "eq", "ne", "lt", "le", "gt", "ge", "maximum", "minimum", "clamp", "clip", "masked_fill", "sum",
    "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "all", "any", "topk", "sort", "argsort",
    "cumsum", "cumprod", "var", "std", "logsumexp", "softmax", "log_softmax", "flatten", "unflatten", "squeeze",
    "unsqueeze", "transpose", "swapaxes", "movedim", "repeat", "tile", "flip", "roll", "split", "chunk", "unbind",
    "narrow", "select", "gather", "index_select", "scatter", "index_put", "matmul", "bmm", "baddbmm", "expand_as",
    "tril", "triu", "nonzero", "fmod", "take_along_dim")


def _method(name):
    def method(self, *args, **kwargs):
        return PUBLIC[name](self, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"torch.Tensor.{name}: tn.{name}(self, ...)."
    return method


for _name in METHODS:
    setattr(Node, _name, _method(_name))


class Graph:
    def __init__(self, name="network"):
        self.name, self.nodes, self.outputs, self._names = name, [], [], set()
        self.automatic = set()   # names made up from the op (`getitem_3`), not given by the user
        self.dims = {}     # symbol -> (input name, axis) where its run-time value is read
        self.ranges = {}   # symbol -> (min, opt, max) for the default optimization profile

    def unique(self, base):
        """`base` if free, else `base_1`, `base_2`, ...: TensorRT layer and tensor names must not clash."""
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        return name

    def add(self, op, inputs, shape, attrs=None, params=None, name=None, dtype=None, index=0):
        automatic = made_up(name)
        name = self.unique(op if name is None else name)
        if automatic:
            self.automatic.add(name)
        for x in inputs:
            if x.graph is not self:
                raise GraphError(f"{user_line()}: layer '{name}' ({op}): input '{x.name}' belongs to another graph")
        dtype = dtype or (inputs[0].dtype if inputs else "float32")
        node = Node(self, op, name, inputs, shape, dtype, attrs or {}, params or {}, user_line(), index)
        self._names.add(name)
        self.nodes.append(node)
        return node

    def input(self, name, shape, dtype="float32", ranges=None, values=None, batch=None):
        """A network input. `shape` names dynamic dimensions with strings, e.g. ("N", 3, "H", "W"); a shape of
        ints only is one sample's, and gets a dynamic batch "N" in front (unless batch=False: a static shape).
        `ranges` gives each name's (min, opt, max) for the default optimization profile (the batch defaults to
        1, 8, 32); `values` = (lo, hi) says which integers sample inputs may hold (token ids below a vocabulary)."""
        where = user_line()
        if name in self._names:
            raise GraphError(f"{where}: input '{name}': the name is already used")
        if dtype not in DTYPES:
            raise GraphError(f"{where}: input '{name}': dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        shape = tuple(shape)
        if batch is not False and all(isinstance(d, (int, np.integer)) for d in shape):
            shape = (BATCH, *shape)
        dims = []
        for axis, d in enumerate(shape):
            if isinstance(d, str):
                if not d.isidentifier():
                    raise GraphError(f"{where}: input '{name}': dimension name {d!r} must be an identifier")
                self.dims.setdefault(d, (name, axis))
                dims.append(sym(d))
            elif isinstance(d, (int, np.integer)) and d >= 0:
                dims.append(int(d))
            else:
                raise GraphError(f"{where}: input '{name}': dimension {axis} is {d!r}; expected a size >= 0 or a name "
                                 "such as 'N' for a dynamic one")
        for k, v in (ranges or {}).items():
            self.set_range(k, v)
        if BATCH in self.dims and BATCH not in self.ranges:
            self.ranges[BATCH] = DEFAULT_BATCH
        return self.add("input", [], dims, attrs={"values": tuple(values)} if values else None, name=name,
                        dtype=dtype)

    def set_range(self, symbol, rng):
        lo, opt, hi = (int(v) for v in rng)
        if not 0 <= lo <= opt <= hi:
            raise GraphError(f"{user_line()}: dimension '{symbol}': range must satisfy min <= opt <= max, got "
                             f"{lo}, {opt}, {hi}")
        self.ranges[symbol] = (lo, opt, hi)

    def output(self, x, name=None):
        """Mark `x` as a network output, renaming it to `name` (the engine's output binding)."""
        if any(o is x for o in self.outputs):
            raise GraphError(f"{user_line()}: '{x.name}' is already an output")
        if name and name != x.name:
            if name in self._names:
                raise GraphError(f"{user_line()}: output '{name}': the name is already used")
            self._names.discard(x.name)
            self._names.add(name)
            x.name = name
        self.outputs.append(x)
        return x

    @property
    def inputs(self):
        return [n for n in self.nodes if n.op == "input"]

    def num_params(self):
        return sum(n.num_params() for n in self.nodes)

    def concrete(self, node_or_shape, env):
        """A shape with every named dimension replaced by its value in `env`."""
        shape = node_or_shape.shape if isinstance(node_or_shape, Node) else node_or_shape
        return tuple(evaluate(d, env) for d in shape)

    def symbols(self):
        return list(self.dims)

    def __str__(self):
        rows = [("name", "op", "inputs", "output", "params", "line", "attributes")]
        for n in self.nodes:
            ins = ", ".join(i.name for i in n.inputs)
            # in the op's declaration order (trtnet.ops records them so), all of them: the column comes last
            attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in n.attrs.items() if v is not None)
            rows.append((n.name, n.op, ins if len(ins) < 40 else ins[:37] + "...",
                         fmt_shape(n.shape) + ("" if n.dtype == "float32" else " " + n.dtype),
                         f"{n.num_params():,}" if n.params else "", n.where, attrs))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        ranges = "; ".join(f"{k} in {lo}..{hi} (opt {opt})" for k, (lo, opt, hi) in self.ranges.items())
        lines = [f"graph {self.name}: {len(self.nodes)} nodes, {self.num_params():,} parameters, "
                 f"outputs {', '.join(o.name for o in self.outputs) or '(none marked)'}" +
                 (f"; dynamic {ranges}" if ranges else "")]
        for r in rows:
            lines.append("  ".join(c.rjust(w) if i == 4 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        return "\n".join(lines)


def _fmt_attr(v):
    """An attribute's value as its type reads: a float keeps its point (1.0, not the int 1)."""
    if isinstance(v, np.ndarray):
        return f"array{v.shape}" if v.size > 4 else str(v.tolist())
    if isinstance(v, float):
        text = f"{v:g}"
        return text if any(c in text for c in ".eni") else text + ".0"
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_fmt_attr(i) for i in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


__all__ = ["Graph", "GraphError", "Node", "Expr", "fmt_shape", "user_line"]
