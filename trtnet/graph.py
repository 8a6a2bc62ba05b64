"""The recorded network: a list of `Node`s, each a tensor that knows its graph, op, inputs and shape.

Nothing here depends on TensorRT: emitters (`emit_trt`, `reference`) walk `graph.nodes` in order.
Shapes are tuples whose first entry is `-1`, the dynamic batch dimension.
"""
import functools
import os
import sys

import numpy as np

_PKG = os.path.dirname(os.path.abspath(__file__))


class GraphError(ValueError):
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


def fmt_shape(shape):
    return "(" + ", ".join("N" if d == -1 else str(d) for d in shape) + ")"


class Node:
    __slots__ = ("graph", "op", "name", "inputs", "attrs", "params", "shape", "dtype", "where")

    def __init__(self, graph, op, name, inputs, shape, dtype, attrs, params, where):
        self.graph, self.op, self.name, self.inputs = graph, op, name, list(inputs)
        self.shape, self.dtype, self.attrs, self.params, self.where = tuple(shape), dtype, attrs, params, where

    @property
    def rank(self):
        return len(self.shape)

    def num_params(self):
        return sum(int(np.size(p)) for p in self.params.values())

    def __add__(self, other):
        from .ops import add
        return add(self, other)

    def __radd__(self, other):
        from .ops import add
        return add(other, self)

    def __sub__(self, other):
        from .ops import sub
        return sub(self, other)

    def __rsub__(self, other):
        from .ops import sub
        return sub(other, self)

    def __mul__(self, other):
        from .ops import mul
        return mul(self, other)

    def __rmul__(self, other):
        from .ops import mul
        return mul(other, self)

    def __repr__(self):
        return f"<{self.name}: {self.op} -> {fmt_shape(self.shape)} {self.dtype}>"


class Graph:
    def __init__(self, name="network"):
        self.name, self.nodes, self.outputs, self._names = name, [], [], set()

    def unique(self, base):
        """`base` if free, else `base_1`, `base_2`, ...: TensorRT layer and tensor names must not clash."""
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        return name

    def add(self, op, inputs, shape, attrs=None, params=None, name=None, dtype=None):
        name = self.unique(name or op)
        for x in inputs:
            if x.graph is not self:
                raise GraphError(f"{user_line()}: layer '{name}' ({op}): input '{x.name}' belongs to another graph")
        dtype = dtype or (inputs[0].dtype if inputs else "float32")
        node = Node(self, op, name, inputs, shape, dtype, attrs or {}, params or {}, user_line())
        self._names.add(name)
        self.nodes.append(node)
        return node

    def input(self, name, shape, dtype="float32"):
        """A network input of per-sample `shape`; the batch dimension is added in front and left dynamic."""
        if name in self._names:
            raise GraphError(f"{user_line()}: input '{name}': the name is already used")
        return self.add("input", [], (-1, *shape), name=name, dtype=dtype)

    def output(self, x, name=None):
        """Mark `x` as a network output, renaming it to `name` (the engine's output binding)."""
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

    def __str__(self):
        rows = [("name", "op", "inputs", "output", "params")]
        for n in self.nodes:
            ins = ", ".join(i.name for i in n.inputs)
            rows.append((n.name, n.op, ins if len(ins) < 40 else ins[:37] + "...", fmt_shape(n.shape) + ("" if n.dtype == "float32" else " " + n.dtype),
                         f"{n.num_params():,}" if n.params else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [f"graph {self.name}: {len(self.nodes)} nodes, {self.num_params():,} parameters, "
                 f"outputs {', '.join(o.name for o in self.outputs) or '(none marked)'}"]
        for r in rows:
            lines.append("  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        return "\n".join(lines)

