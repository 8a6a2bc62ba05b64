"""Write a captured fx graph as a trtnet model file.

Nodes are grouped by the module instances that produced them (fx/export `nn_module_stack`); every module class
with several instances becomes one function, called once per instance with its WeightMap view, so the file
reads like a hand-written zoo model. Literal arguments that differ between instances become keyword
parameters; consecutive calls that differ only by a block index become a loop.
"""
import collections
import inspect
import keyword
import re

import numpy as np
import torch
import torch.fx as fx

import trtnet.ops as tops
from . import ops as T
from .capture import PortError
from .modules import MODULES

OPEN, CLOSE = "\x01", "\x02"          # around literal arguments, so instances can be compared and merged
CONTAINERS = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)
RESERVED = set(tops.__all__) | set(keyword.kwlist) | set(dir(__builtins__) if isinstance(__builtins__, dict) is False
                                                         else __builtins__) | {"w", "g", "shape", "Graph", "i", "np"}


class E(str):
    """Code of an expression; `atomic` is False for infix expressions (parenthesized as operands)."""
    atomic = True


def infix(s):
    e = E(s)
    e.atomic = False
    return e


def strip(s):
    return s.replace(OPEN, "").replace(CLOSE, "")


def py(v):
    """Code for a Python value found in the graph's arguments (literals marked, expressions as they are)."""
    if isinstance(v, E):
        return v
    if isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
        items = [py(i) for i in v]
        if all(i.startswith(OPEN) and i.endswith(CLOSE) for i in items):
            return E(OPEN + _tuple([strip(i) for i in items], isinstance(v, list)) + CLOSE)
        return E(_tuple(items, isinstance(v, list)))
    if isinstance(v, torch.Size):
        return py(tuple(v))
    if isinstance(v, slice):
        parts = ["" if p is None else strip(py(p)) if not isinstance(p, E) else p for p in (v.start, v.stop, v.step)]
        return E(f"{parts[0]}:{parts[1]}" + (f":{parts[2]}" if parts[2] else ""))
    if v is Ellipsis:
        return E("...")
    if isinstance(v, torch.dtype):
        return E(OPEN + repr(str(v).replace("torch.", "")) + CLOSE)
    if isinstance(v, float):
        return E(OPEN + (repr(v) if v == v and abs(v) != float("inf") else f"float({str(v)!r})") + CLOSE)
    if isinstance(v, (bool, int, str)) or v is None:
        return E(OPEN + repr(v) + CLOSE)
    raise TypeError(f"cannot write {type(v).__name__} {v!r} as code")


def _tuple(items, as_list):
    if as_list:
        return "[" + ", ".join(items) + "]"
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


class Group:
    """One call of a module instance whose class repeats: its nodes and the calls of inner groups."""

    def __init__(self, path, cls, parent):
        self.path, self.cls, self.parent, self.items, self.nodes = path, cls, parent, [], set()

    def all_nodes(self):
        out = set(self.nodes)
        for it in self.items:
            if isinstance(it, Group):
                out |= it.all_nodes()
        return out


class Writer:
    """Writes one body (the model function or one group instance) statement by statement."""

    def __init__(self, port, group, inputs):
        self.p, self.group, self.lines, self.env, self.names = port, group, [], {}, {}
        self.prefix = group.path
        self.like = None
        self.current = None
        for node, name in inputs:
            self.env[node] = E(name)
            self.names[name] = node
            if self.like is None and isinstance(port.values.get(node), torch.Tensor):
                self.like = E(name)

    # helpers the module and op writers call ------------------------------------------------------
    def call(self, fn, *args, **kwargs):
        self.p.used.add(fn)
        parts = [py(a) for a in args] + [E(f"{k}={py(v)}") for k, v in kwargs.items()]
        return E(f"{fn}({', '.join(parts)})")

    def raw(self, s):
        return E(s)

    def nondefault(self, **pairs):
        return {k: v for k, (v, d) in pairs.items() if not _equal(v, d)}

    def unsupported(self, what):
        self.p.fail(self.current, what)
        return E("None")

    def view(self, full):
        rel = full[len(self.prefix) + 1:] if self.prefix else full
        return E(f'w["{rel}"]') if rel else E("w")

    def operand(self, v):
        return v if isinstance(v, E) and v.atomic else E(f"({v})") if isinstance(v, E) else py(v)

    # values ----------------------------------------------------------------------------------------
    def arg(self, a):
        """The code of an argument: nodes by their expression, constants folded, containers recursively."""
        if isinstance(a, fx.Node):
            if a in self.env:
                return self.env[a]
            if a in self.p.static:
                return self.constant(a)
            raise AssertionError(f"{a.name} used before it is written")
        if isinstance(a, (list, tuple)):
            return type(a)(self.arg(i) for i in a) if not isinstance(a, torch.Size) else tuple(a)
        if isinstance(a, slice):
            return slice(self.arg(a.start), self.arg(a.stop), self.arg(a.step))
        if isinstance(a, dict):
            return {k: self.arg(v) for k, v in a.items()}
        return a

    def constant(self, node):
        v = self.p.values[node]
        if not isinstance(v, torch.Tensor):
            return py(v) if not isinstance(v, (list, tuple)) else py(tuple(v))
        if v.dim() == 0 and v.dtype.is_floating_point:
            return py(float(v))
        if v.dim() == 0 and not v.dtype.is_floating_point:
            return py(int(v)) if v.dtype != torch.bool else py(bool(v))
        key = self.p.weight_key(node)
        if self.like is None:
            raise PortError(f"no tensor to place the constant {key} beside")
        if v.dtype == torch.float32:
            self.p.used.add("constant")
            return E(f'constant({self.like}, w, "{key[len(self.prefix) + 1:] if self.prefix else key}")')
        self.p.used.add("tensor")
        return E(f'tensor({self.view(key)}, {self.like}, dtype="{str(v.dtype).replace("torch.", "")}")')

    # statements --------------------------------------------------------------------------------
    def assign(self, nodes, expr, base, at):
        """`a, b = expr` with fresh names (a dead variable's name is reused)."""
        names = []
        for n in nodes:
            name = self.fresh(base if len(nodes) == 1 else f"{base}_{len(names)}" if base != "x" else "x", at)
            self.names[name] = n
            self.env[n] = E(name)
            names.append(name)
        self.lines.append(f"{', '.join(names)} = {expr}")

    def fresh(self, base, at):
        base = re.sub(r"\W", "_", base)
        if base[0].isdigit():
            base = "m" + base
        if base in RESERVED or base in self.p.functions_names:
            base += "_out" if base != "x" else ""
        for k in range(1000):
            name = base if k == 0 else f"{base}_{k}"
            holder = self.names.get(name)
            if holder is None or self.p.last_use(self, holder) <= at:
                return name
        raise AssertionError("names exhausted")


def _equal(a, b):
    try:
        return bool(a == b) and type(a) is type(b) or (a is None and b is None)
    except Exception:  # noqa: BLE001
        return False
