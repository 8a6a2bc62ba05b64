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

    def __init__(self, path, cls, parent, call=None):
        self.path, self.cls, self.parent, self.items, self.nodes = path, cls, parent, [], set()
        self.call = call

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
        self.tensors = []     # (name, node) of the inputs: any that still holds its tensor places constants
        self.current = None
        for node, name in inputs:
            self.env[node] = E(name)
            self.names[name] = node
            if isinstance(port.values.get(node), torch.Tensor):
                self.tensors.append((name, node))

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
        v = v.detach()
        if v.dim() == 0 and v.dtype.is_floating_point:
            return py(float(v))
        if v.dim() == 0 and not v.dtype.is_floating_point:
            return py(int(v)) if v.dtype != torch.bool else py(bool(v))
        key = self.p.weight_key(node, self.prefix)
        like = self.like()
        if like is None:
            raise PortError(f"no tensor to place the constant {key} beside")
        if v.dtype == torch.float32:
            self.p.used.add("constant")
            return E(f'constant({like}, w, "{key[len(self.prefix) + 1:] if self.prefix else key}")')
        self.p.used.add("tensor")
        return E(f'tensor({self.view(key)}, {like}, dtype="{str(v.dtype).replace("torch.", "")}")')

    def like(self):
        """A variable holding a tensor of the graph now (constants are recorded into its graph)."""
        for name, node in self.tensors:
            if self.names.get(name) is node:
                return E(name)
        for name, node in reversed(list(self.names.items())):
            if isinstance(self.p.values.get(node), torch.Tensor):
                return E(name)
        return None

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
            if holder is None or self.p.last_use(self, holder, name) <= at:
                return name
        raise AssertionError("names exhausted")


def _equal(a, b):
    try:
        return bool(a == b) and type(a) is type(b) or (a is None and b is None)
    except Exception:  # noqa: BLE001
        return False


def snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def source_line(node):
    """The innermost frame of the user's code that made `node` (file:line: code), else its module path."""
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+), in \w+\n\s*(.*)', trace)
    for path, line, code in reversed(frames):
        if "/torch/" not in path and "/trtnet/port/" not in path and "<eval_with_key>" not in path:
            return f"{path}:{line}: {code.strip()}"
    stack = node.meta.get("nn_module_stack") or {}
    where = list(stack.values())[-1][0] if stack else "(top level)"
    return f"module '{where}' (no source line recorded)"


class Port:
    """Everything known about the capture while its code is written."""

    def __init__(self, gm, values, module, other=None):
        self.gm, self.values, self.other = gm, values, other or {}
        self.modules = dict(module.named_modules())   # the classes (fx's copy holds plain Modules)
        self.state = module.state_dict()
        self.used, self.problems, self.extra, self.keys = set(), [], {}, {}
        self.functions_names, self.fn_of = set(), {}
        nodes = list(gm.graph.nodes)
        self.order = {n: i for i, n in enumerate(nodes)}
        self.static = set()
        fixed = _shape_only(nodes, values, other) if other is not None else set()
        for n in nodes:
            if n.op == "get_attr" or n in fixed or (n.op in ("call_function", "call_method") and
                                                    all(a in self.static for a in n.all_input_nodes)):
                self.static.add(n)
        self.skip = {n for n in nodes if n.op == "call_module" and n.target.startswith("_guards")}
        self.skip |= set(nodes) - _live(nodes, self.static)

    def users(self, n):
        """The users that are written: not those only dead or folded code reads (a cache's copy of k and v)."""
        return [u for u in n.users if u not in self.skip and u not in self.static]

    def fail(self, node, what):
        self.problems.append((source_line(node) if node is not None else "(graph)", what))

    # constants -----------------------------------------------------------------------------------
    def weight_key(self, node, prefix=""):
        """The state_dict name of a parameter, else a new name for a folded or non-persistent tensor."""
        if node in self.keys:
            return self.keys[node]
        if node.op == "get_attr" and node.target in self.state:
            key = node.target
        else:
            roots = sorted(self.weight_roots(node)) or [f"{prefix}.{node.name}" if prefix else node.name]
            key = roots[0] if node.op == "get_attr" else f"{roots[0]}_folded"
            k = 1
            while key in self.state or key in self.extra:
                k += 1
                key = f"{roots[0]}_folded{k}"
            self.extra[key] = self.values[node].detach().cpu().numpy()
        self.keys[node] = key
        return key

    def weight_roots(self, node):
        """The parameters a folded value is computed from (not those of the data whose size it reads)."""
        return {a.target for a in _ancestors(node, self.static) if a.op == "get_attr"}

    # groups ----------------------------------------------------------------------------------------
    def stack(self, node):
        """(call, module path) around `node`, outermost first (the leaf module itself left out); a module called
        twice (weights shared, as in ALBERT) is two calls."""
        out = []
        for call, (path, _) in (node.meta.get("nn_module_stack") or {}).items():
            if path and path != node.target and path in self.modules:
                out.append((call, path))
        return out

    def groups(self):
        nodes = [n for n in self.gm.graph.nodes if n.op not in ("placeholder", "output")
                 and n not in self.static and n not in self.skip]
        counts = collections.defaultdict(set)
        for n in nodes:
            for call, p in self.stack(n):
                counts[type(self.modules[p])].add(call)
        nested = set()
        for n in nodes:
            classes = [type(self.modules[p]) for _, p in self.stack(n)]
            nested |= {c for c in classes if classes.count(c) > 1}
        fn_cls = {c for c, paths in counts.items() if len(paths) > 1 and not issubclass(c, CONTAINERS)
                  and c not in MODULES and c not in nested}   # a class nested in itself is written inline
        root = Group("", type(self.modules[""]), None)
        open_ = [root]
        for n in nodes:
            chain = [(call, p) for call, p in self.stack(n) if type(self.modules[p]) in fn_cls]
            depth = 0
            while depth < len(chain) and depth + 1 < len(open_) and open_[depth + 1].call == chain[depth][0]:
                depth += 1
            del open_[depth + 1:]
            for call, p in chain[depth:]:
                grp = Group(p, type(self.modules[p]), open_[-1], call)
                open_[-1].items.append(grp)
                open_.append(grp)
            open_[-1].items.append(n)
            open_[-1].nodes.add(n)
        while self._dissolve(root):
            pass
        return root

    def _dissolve(self, group):
        """Inline (once) a group whose weights are not all below its own prefix or that has no tensor input."""
        for i, it in enumerate(group.items):
            if not isinstance(it, Group):
                continue
            if not self._valid(it):
                group.items[i:i + 1] = it.items
                group.nodes |= it.nodes
                for sub in it.items:
                    if isinstance(sub, Group):
                        sub.parent = group
                return True
            if self._dissolve(it):
                return True
        return False

    def _valid(self, g):
        head = g.path + "."
        members = g.all_nodes()
        ins = self.io(g, members)[0]
        has_tensor = any(isinstance(self.values.get(n), torch.Tensor) for n in ins)
        for n in members:
            if n.op == "call_module" and not n.target.startswith(head):
                return False
            for a in n.all_input_nodes:
                if a in self.static:
                    if not has_tensor or any(not r.startswith(head) for r in self.weight_roots(a)):
                        return False
        return bool(ins)

    def io(self, g, members=None):
        members = members if members is not None else g.all_nodes()
        ins, outs = [], []
        for n in sorted(members, key=self.order.get):
            for a in n.all_input_nodes:
                if a not in members and a not in ins and (a not in self.static or self._shared(a, members)):
                    ins.append(a)
            if any(u not in members for u in self.users(n)):
                outs.append(n)
        return ins, outs

    def _shared(self, a, members):
        """A constant of no weights of its own that several groups read (one relative-position bias for every
        block): an input of each, as no group's weight view holds it."""
        return not self.weight_roots(a) and any(u not in members for u in self.users(a))


def _live(nodes, static):
    """Nodes the outputs need, not counting what only folded constants read."""
    live, todo = set(), [n for n in nodes if n.op == "output"]
    while todo:
        n = todo.pop()
        if n in live:
            continue
        live.add(n)
        if n not in static:
            todo.extend(n.all_input_nodes)
    return live | {n for n in nodes if n.op == "placeholder"}


META = {"getattr", "size", "sym_size", "dim", "ndimension", "new_zeros", "new_ones", "new_empty", "new_full",
        "zeros_like", "ones_like", "empty_like", "full_like", "sym_numel", "numel"}


def _shape_only(nodes, values, other):
    """Nodes whose values depend on the inputs' sizes only, and are the same at other input sizes (and other
    data): masks, position indices and size arithmetic that are constants of the network."""
    data, out = set(), set()
    for n in nodes:
        if n.op == "placeholder":
            data.add(n)
        elif n.op in ("call_function", "call_method"):
            if T.torch_name(n) not in META and any(a in data for a in n.all_input_nodes):
                data.add(n)
            elif n in other and _same(values.get(n), other[n]):
                out.add(n)
        elif n.op == "call_module" and any(a in data for a in n.all_input_nodes):
            data.add(n)
    return out


def _same(a, b):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and bool(torch.equal(a, b)))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (bool, int, float, str, torch.dtype)) or a is None:
        return type(a) is type(b) and a == b
    return False


def _ancestors(node, within=None):
    seen, todo = [], [node]
    while todo:
        n = todo.pop()
        if n in seen or (within is not None and n not in within):
            continue
        seen.append(n)
        todo.extend(n.all_input_nodes)
    return seen


# one node ------------------------------------------------------------------------------------------
def write_node(p, c, n):
    """(code, kind): kind "value" (a new value), "pass" (the code of an existing value), "skip" (nothing)."""
    c.current = n
    name = T.torch_name(n) if n.op != "call_module" else None
    if name and name.endswith("_") and not name.startswith("_") and name != "and_" and name != "or_":
        name = name[:-1]                 # in-place variants (relu_, add_) as their values
    if name in T.WEIGHTED and (name in T.NORMS or any(a in p.static for a in n.all_input_nodes)):
        return write_weighted(p, c, n, name), "value"     # before its weights are written as constants
    args = [c.arg(a) for a in n.args]
    kwargs = {k: c.arg(v) for k, v in n.kwargs.items()}
    if n.op == "call_module":
        m = p.modules[n.target]
        fn = MODULES.get(type(m))
        if fn is None:
            return c.unsupported(f"module {type(m).__module__}.{type(m).__name__}"), "value"
        try:
            code = fn(c, m, c.view(n.target), *args, **kwargs)
        except TypeError as e:
            return c.unsupported(f"{type(m).__name__} called with {e}"), "value"
        return code, "pass" if code is (args[0] if args else None) else "value"
    if name in T.PASS:
        return (args[0], "pass") if args and n.users else (None, "skip")
    return write_call(p, c, n, name, args, kwargs), "value"


def write_call(p, c, n, name, args, kwargs):
    op = c.operand
    value = p.values.get(n)
    if name == "getattr":
        obj, attr = args
        if attr == "shape":
            return E(f"{op(obj)}.shape")
        if attr in ("values", "indices"):      # of max/min/sort/topk's named tuple
            return E(f"{op(obj)}.{attr}")
        if isinstance(value, torch.device):
            return py(str(value))
        return py(value) if isinstance(value, (torch.dtype, int, float, bool)) else c.unsupported(f"tensor.{attr}")
    if name == "getitem":
        return E(f"{op(args[0])}[{index_code(args[1])}]")
    if name in ("size", "sym_size"):
        return E(f"{op(args[0])}.shape" + (f"[{strip(py(args[1]))}]" if len(args) > 1 else ""))
    if name in ("dim", "ndimension"):
        return E(f"{op(args[0])}.ndim")
    if name in ("neg",):
        return infix(f"-{op(args[0])}")
    if name in ("invert", "bitwise_not") and len(args) == 1:
        return infix(f"~{op(args[0])}")
    if name.startswith("upsample_") and isinstance(n.target, torch._ops.OpOverload):
        mode = re.fullmatch(r"upsample_(nearest_exact|nearest|linear|bilinear|bicubic|trilinear)\dd(_aa)?", name)
        mode, antialias = mode.group(1).replace("_", "-"), mode.group(2) is not None
        schema = dict(zip([a.name for a in n.target._schema.arguments], n.args))
        size = tuple(int(d) for d in value.shape[2:])
        extra = {"align_corners": schema["align_corners"]} if schema.get("align_corners") is not None else {}
        extra.update({"antialias": True} if antialias else {})
        return c.call("interpolate", args[0], size=size, **c.nondefault(mode=(mode, "nearest")), **extra)
    if name == "scaled_dot_product_attention" and value.dim() > 4 and len(args) == 3 and "attn_mask" not in kwargs:
        q, k, v = (c.call("reshape", a, (-1, *p.values[x].shape[-3:])) for a, x in zip(args, n.args))
        return c.call("reshape", bind(c, name, [q, k, v], kwargs), (-1, *value.shape[1:]))
    if name == "scaled_dot_product_attention" and _one_kv_head(p, n) and "enable_gqa" not in kwargs:
        kwargs = {**kwargs, "enable_gqa": True}     # torch broadcasts one key/value head: grouped heads' case
    if name == "square":
        return infix(f"{op(args[0])} ** 2")
    if name == "einsum":
        code = _einsum(c, args)
        if code is not None:
            return code
    if name == "addmm" and kwargs.get("beta", 1) == 1 and kwargs.get("alpha", 1) == 1:
        return infix(f"{op(args[0])} + {op(args[1])} @ {op(args[2])}")
    if name in ("addcmul", "addcdiv"):
        value = kwargs.get("value", args[3] if len(args) > 3 else 1)
        scaled = "" if value == 1 else f"{strip(py(value))} * "
        return infix(f"{op(args[0])} + {scaled}{op(args[1])} {'*' if name == 'addcmul' else '/'} {op(args[2])}")
    if name == "rsub":
        return infix(f"{op(args[1])} - {op(args[0])}")
    if name == "div" and kwargs.get("rounding_mode") is not None:   # torch.div(a, b, rounding_mode="floor")
        mode = kwargs["rounding_mode"]
        return infix(f"{op(args[0])} // {op(args[1])}") if mode == "floor" else c.unsupported(f"div {mode} rounding")
    if name in T.INFIX and len(args) == 2 and kwargs.get("alpha", 1) == 1:
        # h / w, h + 1e-6: a Python float of run-time sizes is computed by the network, as a 0-D tensor
        if isinstance(value, float) and (like := c.like()) is not None:
            args = [c.call("tensor", a, like, "float32") if _run_time_size(p, x) else a
                    for a, x in zip(args, n.args)]
        return infix(f"{op(args[0])} {T.INFIX[name]} {op(args[1])}")
    if name in ("to", "type", "float", "half", "type_as", "_to_copy", "long", "int", "bool"):
        src, dst = p.values.get(n.args[0]), value
        if isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor) and src.dtype != dst.dtype:
            return c.call("cast", args[0], dst.dtype)
        return args[0]
    if name == "masked_fill":
        return c.call("where", args[1], args[2], args[0])
    if name == "slice" and isinstance(n.target, torch._ops.OpOverload):
        dim, start, end, step = list(args[1:]) + [0, None, None, 1][len(args) - 1:]
        lead = ", ".join([":"] * (dim % p.values[n.args[0]].dim()))
        end = None if isinstance(end, int) and end >= 2 ** 62 else end
        return E(f"{op(args[0])}[{lead + ', ' if lead else ''}{index_code(slice(start or None, end, None if step == 1 else step))}]")
    if name == "t":
        return c.call("transpose", args[0], 0, 1)
    if name == "repeat_interleave" and len(args) > 1 and not isinstance(p.values.get(n.args[1]), torch.Tensor):
        dim = kwargs.get("dim", args[2] if len(args) > 2 else None)
        if dim is None:
            return c.unsupported("repeat_interleave without dim")
        d = dim % p.values[n.args[0]].dim()       # each element repeated: a new dim expanded, then merged
        sizes = tuple(args[1] if i == d + 1 else -1 for i in range(p.values[n.args[0]].dim() + 1))
        return c.call("flatten", c.call("expand", c.call("unsqueeze", args[0], d + 1), sizes), d, d + 1)
    if name in ("norm", "linalg_vector_norm", "vector_norm") and isinstance(value, torch.Tensor):
        return _vector_norm(c, args, kwargs)
    if name in ("reshape_as", "view_as"):
        return c.call("reshape", args[0], E(f"{op(args[1])}.shape"))
    if name in ("new_full", "new_zeros", "new_ones") and isinstance(value, torch.Tensor):   # sizes may be run-time
        fill = args[2] if name == "new_full" else int(name == "new_ones")
        return c.call("full", args[1], fill, like=args[0], dtype=value.dtype)
    pool = re.fullmatch(r"(?:adaptive_)?(?:max|avg)_pool(\d)d", name)
    if pool and isinstance(p.values.get(n.args[0]), torch.Tensor) and p.values[n.args[0]].dim() == int(pool[1]) + 1:
        kwargs = {**kwargs, "dims": int(pool[1])}   # an unbatched input, (C, *spatial): the rank is not the input's
    name = T.RENAME.get(name, name)
    if name in ("repeat", "tile") and isinstance(value, torch.Tensor):
        sizes = tuple(args[1]) if len(args) == 2 and isinstance(args[1], (tuple, list)) else tuple(args[1:])
        expand = _repeat_as_expand(p.values[n.args[0]].shape, sizes)
        if expand is not None:
            return c.call("expand", args[0], expand)
    if name in T.VARARGS and len(args) > 2 or (name in T.VARARGS and len(args) == 2 and   # x.reshape(y.shape)
                                                  not isinstance(args[1], (tuple, list)) and
                                                  not isinstance(p.values.get(n.args[1]), (tuple, list))):
        args = [args[0], tuple(args[1:])] if name != "repeat" else args
    if name == "reshape" and len(args) == 2 and isinstance(args[1], (tuple, list)):
        args = [args[0], _explicit_sizes(p, n, args[1], value)]
    if not T.known(name):
        return c.unsupported(f"{'tensor.' if n.op == 'call_method' else ''}{name}")
    return bind(c, name, args, kwargs)


def _one_kv_head(p, n):
    """Multi-query attention: keys and values of one head beside queries of several (heads one dim before the
    sequence's), which torch's scaled_dot_product_attention broadcasts."""
    q, k, v = (p.values.get(a) for a in (*n.args[:3], None, None, None)[:3])
    return all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in (q, k, v)) and \
        k.shape[1] == v.shape[1] == 1 < q.shape[1]


def _vector_norm(c, args, kwargs):
    """x.norm(), torch.linalg.vector_norm (ConvNeXt-V2's GRN, CLIP's embeddings) as the reduction it is."""
    ord_, dim, keepdim = (list(args[1:]) + [None, None, False][len(args) - 1:])[:3]
    ord_ = kwargs.get("ord", kwargs.get("p", 2 if ord_ in (None, "fro") else ord_))
    dim, keepdim = kwargs.get("dim", dim), kwargs.get("keepdim", keepdim)
    if kwargs.get("dtype") is not None or ord_ not in (1, 2, float("inf")):
        return c.unsupported(f"vector norm of order {ord_!r}" + (" with a dtype" if kwargs.get("dtype") else ""))
    kw = c.nondefault(dim=(dim, None), keepdim=(keepdim, False))
    if ord_ == 2:
        return c.call("sqrt", c.call("sum", infix(f"{c.operand(args[0])} * {c.operand(args[0])}"), **kw))
    return c.call("sum" if ord_ == 1 else "amax", c.call("abs", args[0]), **kw)


def _run_time_size(p, a):
    """Whether argument `a` is a size the network computes at run time (a Python int the capture did not fold)."""
    return isinstance(a, fx.Node) and a not in p.static and type(p.values.get(a)) is int


def _explicit_sizes(p, n, sizes, value):
    """A reshape's -1 written as its size where that size is the same at the other input sizes (a head count):
    left to TensorRT, it would be a quotient of run-time sizes that recording cannot resolve."""
    i = next((i for i, s in enumerate(sizes) if type(s) is int and s == -1), None)
    other = p.other.get(n)
    if i is None or not isinstance(other, torch.Tensor) or other.dim() != value.dim() or \
            other.shape[i] != value.shape[i]:
        return sizes
    return type(sizes)(int(value.shape[i]) if k == i else s for k, s in enumerate(sizes))


def _einsum(c, args):
    """A two-operand einsum that is a batched matrix product (with transposes), written as `@`."""
    eq = args[0].replace(" ", "")
    ops = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
    if "->" not in eq or len(ops) != 2 or "." in eq:
        return None
    (a, b), out = eq.split("->")[0].split(","), eq.split("->")[1]
    if not (len(a) == len(b) == len(out) >= 2 and a[:-2] == b[:-2] == out[:-2]):
        return None
    shared = set(a[-2:]) & set(b[-2:])
    if len(shared) != 1 or shared & set(out[-2:]):
        return None
    k = shared.pop()
    i, j = a[-2:].replace(k, ""), b[-2:].replace(k, "")
    if {i, j} != set(out[-2:]):
        return None
    lhs = ops[0] if a[-1] == k else c.call("transpose", ops[0], -2, -1)
    rhs = ops[1] if b[-2] == k else c.call("transpose", ops[1], -2, -1)
    if out[-2:] == j + i:
        lhs, rhs = (c.call("transpose", rhs, -2, -1), c.call("transpose", lhs, -2, -1))
    return infix(f"{c.operand(lhs)} @ {c.operand(rhs)}")


def _repeat_as_expand(shape, sizes):
    """Sizes for expand() where repeat() only copies unit dimensions by run-time counts (the batch), else None."""
    if all(isinstance(r, int) for r in sizes) or len(sizes) < len(shape):
        return None
    shape = (1,) * (len(sizes) - len(shape)) + tuple(shape)
    if any(d != 1 and not (isinstance(r, int) and r == 1) for d, r in zip(shape, sizes)):
        return None
    return tuple(-1 if isinstance(r, int) and r == 1 else r for r in sizes)


def bind(c, name, args, kwargs):
    """A trtnet call with torch's arguments; extra ones must be at their do-nothing values."""
    params = [q for q in inspect.signature(getattr(tops, name)).parameters.values() if q.name != "name"]
    varargs = any(q.kind == q.VAR_POSITIONAL for q in params)
    if not varargs and len(args) > len(params):
        extra, args = args[len(params):], args[:len(params)]
        if any(a not in (None, False) for a in extra):
            return c.unsupported(f"{name} with extra arguments {extra}")
    names = {q.name for q in params}
    kept = {}
    if "like" in names and "like" not in kwargs and len(args) <= [q.name for q in params].index("like"):
        kwargs = {**kwargs, "like": c.like()}     # factories are recorded into the graph of a live tensor
    for k, v in kwargs.items():
        if v is None:       # torch's None is "the default"
            continue
        if k in names:
            kept[k] = v
        elif k in T.DROP_KW or v is False:
            continue
        else:
            return c.unsupported(f"{name}({k}={v!r})")
    return c.call(name, *args, **kept)


def index_code(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    parts = [E("None") if i is None else py(i) for i in items]
    return ", ".join(strip(x) if not isinstance(x, E) or x.startswith(OPEN) else x for x in parts) or "()"


def write_weighted(p, c, n, name):
    """A functional layer on parameters (F.conv2d(x, self.weight, ...)): a WeightMap view of them."""
    fn, roles = T.WEIGHTED[name]
    kw = _arguments(p, n)
    ids = kw.get("input", kw.get("indices"))
    tensors = [kw.get(r) for r in roles]
    rest = [kw.get(k) for k in {"conv": ("stride", "padding", "dilation", "groups"), "bn": ("eps",),
                                "layer_norm": ("normalized_shape", "eps"), "group_norm": ("num_groups", "eps"),
                                "rms_norm": ("normalized_shape", "eps")}.get(fn, ())]
    if fn in ("bn", "layer_norm", "group_norm") and rest[-1] is None:
        rest[-1] = 1e-5
    view = weight_view(p, c, dict(zip(roles, tensors))) if any(t is not None for t in tensors) else None
    if view is None and any(t is not None for t in tensors):
        return c.unsupported(f"{name} on weights computed at run time")
    x = c.arg(ids)
    if fn == "conv":
        s, pad, d, gr = [v if v is not None else dflt for v, dflt in zip(rest, (1, 0, 1, 1))]
        from .modules import _one
        return c.call("conv", x, view, **c.nondefault(stride=(_one(s), 1), padding=(_one(pad), 0),
                                                       dilation=(_one(d), 1), groups=(gr, 1)))
    if fn == "fc":
        return c.call("fc", x, view)
    if fn == "bn":
        return c.call("bn", x, view, **c.nondefault(eps=(float(rest[0]), 1e-5)))
    if fn == "layer_norm":
        shape, eps = tuple(rest[0]), float(rest[1])
        kw = c.nondefault(eps=(eps, 1e-5))
        if len(shape) > 1:
            kw["normalized_shape"] = shape
        return c.call("layer_norm", x, view if tensors[0] is not None else None, **kw)
    if fn == "group_norm":
        return c.call("group_norm", x, rest[0], view if tensors[0] is not None else None,
                      **c.nondefault(eps=(float(rest[1]), 1e-5)))
    if fn == "rms_norm":     # eps None: the dtype's machine epsilon, in both
        shape = tuple(rest[0]) if isinstance(rest[0], (tuple, list)) else (rest[0],)
        kw = c.nondefault(eps=(None if rest[1] is None else float(rest[1]), None))
        return c.call("rms_norm", x, view, **kw, **({"normalized_shape": shape} if len(shape) > 1 else {}))
    return c.call("embedding", x, view)


SIGNATURES = {"conv": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
              "linear": ("input", "weight", "bias"),
              "layer_norm": ("input", "normalized_shape", "weight", "bias", "eps"),
              "group_norm": ("input", "num_groups", "weight", "bias", "eps"),
              "rms_norm": ("input", "normalized_shape", "weight", "eps"),
              "batch_norm": ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
              "embedding": ("input", "weight", "padding_idx")}


def _arguments(p, n):
    """The call's arguments by torch's names (ATen ops by their schema, functions by torch.nn.functional's)."""
    if isinstance(n.target, torch._ops.OpOverload):
        names = [a.name for a in n.target._schema.arguments]
    else:
        name = T.torch_name(n)
        names = SIGNATURES["conv" if name.startswith("conv") else name]
    return {**dict(zip(names, n.args)), **n.kwargs}


def weight_view(p, c, tensors):
    """w["prefix"] where the tensors are that module's own parameters, else a new prefix holding them."""
    present = {k: v for k, v in tensors.items() if v is not None}
    if any(v not in p.static for v in present.values()):
        return None
    targets = {k: v.target for k, v in present.items() if v.op == "get_attr" and v.target in p.state}
    prefixes = {t.rsplit(".", 1)[0] for t in targets.values()} if len(targets) == len(present) else set()
    if len(prefixes) == 1:
        prefix = prefixes.pop()
        if all(t == f"{prefix}.{k}" for k, t in targets.items()) and all(
                f"{prefix}.{k}" not in p.state for k in tensors if k not in present):
            return c.view(prefix)
    first = next(iter(present.values()))
    base = (sorted(p.weight_roots(first)) or [first.name])[0].rsplit(".", 1)[0] + ".folded"
    prefix, k = base, 1
    while any(key.startswith(prefix + ".") for key in list(p.state) + list(p.extra)):
        k += 1
        prefix = f"{base}{k}"
    for role, node in present.items():
        p.extra[f"{prefix}.{role}"] = p.values[node].detach().cpu().numpy()
    return c.view(prefix)


# bodies --------------------------------------------------------------------------------------------
INLINE_MAX = 72


def write_body(p, g, inputs, outputs, calls, fixed=None):
    """Lines of one body; `calls` maps each child group to (function name, {param: value}) for its call."""
    c = Writer(p, g, inputs)
    c.env.update(fixed or {})
    pos = {}
    for i, it in enumerate(g.items):
        for n in (it.all_nodes() if isinstance(it, Group) else [it]):
            pos[n] = i
    end = len(g.items)
    out_set = set(outputs)

    def chain_end(u):
        if u not in pos or u in out_set:
            return end + 1
        while (u in g.nodes and u not in out_set and _uses(p, u) == 1 and p.users(u)[0] in pos
               and p.users(u)[0] in g.nodes):
            u = p.users(u)[0]
        return end + 1 if u in out_set else pos[u]     # outputs are read in the return line

    def last_use(writer, holder, name):
        """Where the value a name holds is last read: through the holder and the expressions written with it
        and not yet read (pass-throughs, `x.shape[1]`)."""
        word = re.compile(rf"(?<![\w\"]){re.escape(name)}\b")
        same = [holder] + [n for n, e in writer.env.items() if n is not holder and word.search(strip(e))]
        if any(n in out_set for n in same):
            return end + 1
        return max([chain_end(u) for n in same for u in p.users(n)] or [-1])

    p.last_use = last_use
    done = set()
    for i, it in enumerate(g.items):
        if isinstance(it, Group):
            ins, outs = p.io(it)
            fn, params, uses_w = calls[it]
            args = [c.operand(c.arg(a)) for a in ins] + ([c.view(it.path)] if uses_w else [])
            code = c.call(fn, *args, **params)
            p.used.discard(fn)
            c.assign(outs, code, "x", i)
            continue
        if it in done:
            continue
        code, kind = write_node(p, c, it)
        if kind == "skip":
            continue
        value = p.values.get(it)
        if kind == "pass" and (re.fullmatch(r"\w+", strip(code)) or _uses(p, it) <= 1) or \
                isinstance(value, torch.Size) and strip(code).endswith(".shape"):    # sizes read where used
            c.env[it] = code
            continue
            c.env[it] = code
            continue
        users = p.users(it)
        getters = [u for u in users if T.torch_name(u) == "getitem" and u.op == "call_function"]
        if isinstance(value, (tuple, list)) and users and len(getters) == len(users) and len(value) <= 4 \
                and all(u in g.nodes and isinstance(u.args[1], int) for u in getters):
            by_index = {u.args[1] % len(value): u for u in getters}
            names = [c.fresh(_base(p, it, g) + f"_{k}", i) if k in by_index else "_" for k in range(len(value))]
            for k, nm in enumerate(names):
                if k in by_index:
                    c.names[nm] = by_index[k]
            for u in getters:
                c.env[u] = E(names[u.args[1] % len(value)])
                done.add(u)
            c.lines.append(f"{', '.join(names)} = {code}")
            continue
        inline = len(strip(code)) <= INLINE_MAX and (
            _uses(p, it) == 1 and all(u in pos for u in users) if it not in out_set else outputs.count(it) == 1
            and not any(u in pos for u in users))
        if inline:
            c.env[it] = code
        else:
            c.assign([it], code, _base(p, it, g), i)
    return c, [c.arg(o) if o in c.env else E("None") for o in outputs]


def _uses(p, n):
    return sum(_count(a, n) for u in p.users(n) for a in (*u.args, *u.kwargs.values()))


def _count(a, n):
    if a is n:
        return 1
    if isinstance(a, (list, tuple)):
        return sum(_count(i, n) for i in a)
    if isinstance(a, dict):
        return sum(_count(i, n) for i in a.values())
    if isinstance(a, slice):
        return sum(_count(i, n) for i in (a.start, a.stop, a.step))
    return 0


def _base(p, n, g):
    if n.op == "call_module":
        rel = n.target[len(g.path) + 1:] if g.path else n.target
        return rel.replace(".", "_")
    name = T.torch_name(n)
    if name == "getattr":
        return "dims" if n.args[1] == "shape" else n.args[1]
    if name == "getitem" and isinstance(p.values.get(n.args[0]), torch.Size):
        return f"size{n.args[1]}" if isinstance(n.args[1], int) and n.args[1] >= 0 else "size"
    return "y" if name in T.INFIX or name in ("getitem", "neg") else T.RENAME.get(name, name)


# functions for repeated classes ------------------------------------------------------------------
def template(lines):
    tmpl = tuple(re.sub(f"{OPEN}.*?{CLOSE}", OPEN + CLOSE, ln) for ln in lines)
    values = [v for ln in lines for v in re.findall(f"{OPEN}(.*?){CLOSE}", ln)]
    names = [m or "arg" for ln in lines for m in re.findall(rf"(?:(\w+)=)?{OPEN}", ln)]
    return tmpl, values, names


def fill(tmpl, slots):
    it = iter(slots)
    return [re.sub(OPEN + CLOSE, lambda _: next(it), ln) for ln in tmpl]


def make_functions(name, instances):
    """[(function name, code)] and {group: (function name, {param: value})} for the instances of one class.

    instances: [(group, lines, n_inputs)], lines with literal markers."""
    variants = collections.OrderedDict()
    for g, lines, n_in in instances:
        tmpl, values, names = template(lines)
        variants.setdefault((tmpl, n_in), []).append((g, values, names))
    ordered = sorted(variants.items(), key=lambda kv: -len(kv[1]))
    main_keys = _view_keys(ordered[0][0][0])
    defs, calls, taken = [], {}, set()
    for k, ((tmpl, n_in), members) in enumerate(ordered):
        fn = name if k == 0 else f"{name}_{'_'.join(sorted(_view_keys(tmpl) - main_keys)) or k + 1}"
        if fn in taken:
            fn = f"{fn}_{k + 1}"
        taken.add(fn)
        params, slot_code = collections.OrderedDict(), []
        for s in range(len(members[0][1])):
            vals = tuple(m[1][s] for m in members)
            if len(set(vals)) == 1:
                slot_code.append(vals[0])
                continue
            key = (members[0][2][s], vals)
            if key not in params:
                pname = members[0][2][s]
                while pname in {v[0] for v in params.values()} or pname in ("x", "w"):
                    pname += "_"
                default = collections.Counter(vals).most_common(1)[0][0]
                params[key] = (pname, default)
            slot_code.append(params[key][0])
        body = fill(tmpl, slot_code)
        uses_w = any(re.search(r"\bw\b", ln) for ln in body)
        sig = ", ".join(["x" if i == 0 else f"x{i}" for i in range(n_in)] + (["w"] if uses_w else []) +
                        [f"{pn}={d}" for pn, d in params.values()])
        defs.append((fn, body, sig))
        for j, (g, vals, _) in enumerate(members):
            calls[g] = (fn, {pn: E(OPEN + key[1][j] + CLOSE) for key, (pn, d) in params.items()
                             if key[1][j] != d}, uses_w)
    return defs, calls


def _view_keys(tmpl):
    return {m.split(".")[0] for ln in tmpl for m in re.findall(r'w\["([^"]+)"\]', ln)}


# loops ---------------------------------------------------------------------------------------------
def fold_loops(lines):
    """Consecutive lines that differ only by a view index w["a.{i}"] (i counting up) become a loop."""
    out, i = [], 0
    pat = re.compile(r'w\["([^"]*?)(\d+)"\]')
    while i < len(lines):
        m = list(pat.finditer(lines[i]))
        run = 1
        if len(m) == 1:
            head, k0 = m[0].group(1), int(m[0].group(2))
            key = pat.sub("@", lines[i])
            while i + run < len(lines):
                m2 = list(pat.finditer(lines[i + run]))
                if (len(m2) == 1 and m2[0].group(1) == head and int(m2[0].group(2)) == k0 + run
                        and pat.sub("@", lines[i + run]) == key):
                    run += 1
                else:
                    break
        if run >= 2 and "=" in lines[i] and _chain(lines[i]):
            loop = pat.sub(lambda mm: f'w[f"{head}{{i}}"]', lines[i])
            out.append(f"for i in range({k0}, {k0 + run}):" if k0 else f"for i in range({run}):")
            out.append("    " + loop)
            i += run
        else:
            out.append(lines[i])
            i += 1
    return out


def _chain(line):
    """`x = f(x, ...)`: the line consumes what it assigns, so repeating it is a loop."""
    lhs, _, rhs = line.partition(" = ")
    return re.search(rf"\b{re.escape(lhs.strip())}\b", rhs) is not None


# the file ------------------------------------------------------------------------------------------
def generate(gm, module, values, inputs, output_names, name, header, register_line, imports, other=None):
    """(code, extra tensors to store beside the state_dict); `other`: the node values at other input sizes."""
    p = Port(gm, values, module, other)
    root = p.groups()
    groups = _all_groups(root)
    by_cls = collections.OrderedDict()
    for g in groups:
        by_cls.setdefault(g.cls, []).append(g)
    calls, defs, done = {}, [], set()
    while len(done) < len(by_cls):
        ready = [cls for cls, gs in by_cls.items() if cls not in done and all(
            ch.cls in done for g in gs for ch in g.items if isinstance(ch, Group))]
        if not ready:
            raise PortError("module classes call each other recursively; cannot write functions for them")
        for cls in ready:
            instances = []
            for g in by_cls[cls]:
                ins, outs = p.io(g)
                c, outx = write_body(p, g, [(n, "x" if i == 0 else f"x{i}") for i, n in enumerate(ins)], outs, calls)
                instances.append((g, c.lines + [f"return {', '.join(outx)}"], len(ins)))
            fn_name = snake(cls.__name__)
            while fn_name in RESERVED or fn_name in p.functions_names or fn_name == name:
                fn_name += "_block"
            fdefs, fcalls = make_functions(fn_name, instances)
            calls.update(fcalls)
            for fn, body, sig in fdefs:
                p.functions_names.add(fn)
                defs.append((fn, sig, body, cls))
            done.add(cls)
    every = [n for n in gm.graph.nodes if n.op == "placeholder"]
    placeholders = [n for n in every if n.target in [i[4] for i in inputs]] or every[:len(inputs)]
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    outs = _flatten_out(out_node.args[0])
    if len(outs) != len(output_names):
        output_names = [f"output_{i}" for i in range(len(outs))] if len(outs) > 1 else ["output"]
    fixed = {n: E("None") for n in every if n not in placeholders}   # arguments left at their defaults
    c, outx = write_body(p, root, [(n, n.name) for n in placeholders], outs, calls, fixed)
    if p.problems:
        raise PortError(_problems(p.problems))
    lines = _render(defs, c.lines, outx, output_names, placeholders, inputs, name, header, register_line, imports, p)
    return "\n".join(lines) + "\n", p.extra


def _problems(problems):
    seen = list(dict.fromkeys(problems))
    body = "\n".join(f"  {where}: unsupported {what}" for where, what in seen)
    return f"{len(seen)} unsupported operation{'s' if len(seen) > 1 else ''} (nothing written):\n{body}"


def _all_groups(root):
    out = []
    for it in root.items:
        if isinstance(it, Group):
            out.append(it)
            out.extend(_all_groups(it))
    return out


def _flatten_out(a):
    if isinstance(a, dict):
        return [v for v in a.values() if v is not None]
    if isinstance(a, (tuple, list)):
        return [x for v in a for x in _flatten_out(v)]
    return [] if a is None else [a]


def _render(defs, body, outx, out_names, placeholders, inputs, name, header, register_line, imports, p):
    used = sorted(p.used - p.functions_names)
    lines = [f'"""{header[0]}', "", *header[1:], '"""', *imports,
             f"from trtnet import ({', '.join(['Graph'] + used)})", "from trtnet.zoo import register", "", ""]
    for fn, sig, fbody, cls in defs:
        lines += [f"def {fn}({sig}):", f'    """{cls.__module__}.{cls.__qualname__}."""']
        lines += ["    " + ln for ln in fold_loops([strip(x) for x in fbody])]
        lines += ["", ""]
    lines += register_line
    lines += [f"def {name}(w, shape):", f'    g = Graph("{name}")']
    for k, n in enumerate(placeholders):
        shape, dtype, ranges = inputs[k][:3]
        sh = "shape" if k == 0 else repr(tuple(shape))
        extra = "" if dtype == "float32" else f', "{dtype}"'
        if dtype.startswith("int"):
            extra += f", values=(0, {inputs[k][3] if len(inputs[k]) > 3 else 10})"
        if ranges:
            extra += f", ranges={ranges!r}"
        lines.append(f'    {n.name} = g.input("{n.name}", {sh}{extra})')
    lines += ["    " + ln for ln in fold_loops([strip(x) for x in body])]
    for code, oname in zip(outx, out_names):
        lines.append(f'    g.output({strip(code)}, "{oname}")')
    lines.append("    return g")
    return [_wrap(ln) for ln in lines]


def _wrap(line, width=119):
    """Break a long line after top-level commas of its outermost argument lists, continuation lines aligned
    with the bracket they are in (strings are left whole)."""
    if len(line) <= width:
        return line
    indent = len(line) - len(line.lstrip())
    commas, opens, quote = [], [], None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote and line[i - 1] != "\\" else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            opens.append(i)
        elif ch in ")]}" and opens:
            opens.pop()
        elif ch == "," and opens:
            commas.append((i, len(opens), opens[-1]))
    pieces, starts = [], [(0, 0)]          # (position in line, column it is written at)

    def column(pos):
        start, col = max(s for s in starts if s[0] <= pos)
        return pos - start + col

    start, pad = 0, 0
    while len(line) - start + pad > width:
        fits = [c for c in commas if c[0] > start and column(c[0]) < width]
        if not fits:
            break
        level = min(c[1] for c in fits)
        cut, _, open_at = max(c for c in fits if c[1] == level)
        pieces.append(" " * pad + line[start:cut + 1].lstrip() if pieces else line[:cut + 1])
        pad = column(open_at) + 1
        if pad <= indent or pad > width - 30:
            pad = indent + 4
        start = cut + 1
        while start < len(line) and line[start] == " ":
            start += 1
        starts.append((start, pad))
    pieces.append(" " * pad + line[start:] if pieces else line)
    return "\n".join(pieces)
