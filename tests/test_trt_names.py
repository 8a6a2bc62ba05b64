"""Every TensorRT name trtnet uses exists in TensorRT-RTX 1.7 and in full TensorRT 10.x and 11.x, or is guarded
(hasattr/getattr with a default) or listed in the README as unsupported there.

The names come from the source by AST: attributes of the TensorRT module (names bound from `backend.trt()` or
`trt()`, parameters and attributes called `t`/`trt`) and of what they hold (`t.BuilderFlag.REFIT`), and of
TensorRT objects: names and attributes called network, builder, config, layer, runtime, refitter, parser,
an `_Executor`'s engine and cache, a state's context, and whatever a call on one of those returns (`layer =
network.get_layer(i)`). The flavours' names are tests/data/trt_names_*.json, made by scripts/trt_names.py; the
full-TensorRT ones come from the bindings' string data (a superset, read by suffix: the linker shares a string's
tail between names)."""
import ast
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["trtnet/backend.py", "trtnet/engine.py", "trtnet/runtime.py", "trtnet/cache.py", "trtnet/emit_trt",
           "trtnet/check", "trtnet/export"]
FLAVOURS = {"TensorRT-RTX 1.7": "trt_names_rtx17.json", "TensorRT 10.x": "trt_names_10.json",
            "TensorRT 11.x": "trt_names_11.json"}
OBJECT_NAMES = {"network", "builder", "config", "builder_config", "layer", "runtime", "refitter", "parser",
                "cuda_engine", "inspector", "timing_cache"}
EXECUTOR = ("_Executor", {"engine", "cache"})   # its members are TensorRT's
PYTHON = {"__class__", "__members__", "name", "value"}   # Python's own, on any object


def flavour_names(file):
    with open(os.path.join(ROOT, "tests", "data", file)) as f:
        doc = json.load(f)
    names = set(doc["names"])
    return names if doc["exact"] else {n[i:] for n in names for i in range(len(n))}


def unsupported_in_readme():
    """{name: text} from the README's section between <!-- trt-names --> and <!-- /trt-names -->."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"<!-- trt-names -->(.*?)<!-- /trt-names -->", text, re.S)
    assert m, "README.md lacks the <!-- trt-names --> section of TensorRT names a flavour lacks"
    return {n: line for line in m.group(1).splitlines() for n in re.findall(r"^- `([A-Za-z_][\w.]*)`", line)}


class Uses(ast.NodeVisitor):
    """TensorRT names used in one module: {name: [file:line]}; guarded names: those of hasattr(x, NAME) and
    getattr(x, NAME, default), and every name used in a function that returns early unless hasattr(...)."""

    def __init__(self, path):
        self.path, self.used, self.guarded = path, {}, set()
        self.modules, self.objects, self.classes, self.guarding = [set()], [set()], [None], [False]

    def visit_ClassDef(self, node):
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def visit_FunctionDef(self, node):
        params = {a.arg for a in node.args.args + node.args.kwonlyargs}
        self.modules.append(self.modules[-1] - params | (params & {"t", "trt"}))
        self.objects.append(self.objects[-1] - params | (params & OBJECT_NAMES))
        self.guarding.append(self.guarding[-1] or any(_early_return_unless_hasattr(st) for st in node.body))
        self.generic_visit(node)
        for stack in (self.modules, self.objects, self.guarding):
            stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def is_module(self, node):
        if isinstance(node, ast.Name):
            return node.id in self.modules[-1]
        if isinstance(node, ast.Attribute):
            return node.attr in ("t", "trt") or (not node.attr.startswith("__") and self.is_module(node.value))
        if isinstance(node, ast.Call):   # backend.trt(), trt(), select(...)
            f = node.func
            return (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "backend"
                    and f.attr in ("trt", "select")) or (isinstance(f, ast.Name) and f.id in ("trt", "select"))
        return False

    def is_trt(self, node):
        """A TensorRT module, class, enum or object."""
        if self.is_module(node):
            return True
        if isinstance(node, ast.Name):
            return node.id in self.objects[-1]
        if isinstance(node, ast.Attribute):
            return node.attr in OBJECT_NAMES or (self.classes[-1] == EXECUTOR[0] and isinstance(node.value, ast.Name)
                                                 and node.value.id == "self" and node.attr in EXECUTOR[1]) or \
                (isinstance(node.value, ast.Name) and node.value.id == "state" and node.attr == "context")
        if isinstance(node, ast.Call):   # what a TensorRT call returns
            return isinstance(node.func, ast.Attribute) and self.is_trt(node.func.value)
        return False

    def visit_Assign(self, node):
        self.generic_visit(node)
        for target in node.targets:
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            targets = target.elts if isinstance(target, ast.Tuple) else [target]
            for tg, v in zip(targets, values) if len(values) == len(targets) else ():
                if isinstance(tg, ast.Name):
                    self._bind(tg.id, self.is_module(v), self.is_trt(v) and not self.is_module(v))

    def _bind(self, name, module, obj):
        for stack, on in ((self.modules, module), (self.objects, obj)):
            (stack[-1].add if on else stack[-1].discard)(name)

    def visit_For(self, node):
        for n in ast.walk(node.target):
            if isinstance(n, ast.Name):
                self._bind(n.id, False, False)
        self.generic_visit(node)

    def visit_comprehension(self, node):
        self.visit_For(node)

    def visit_Attribute(self, node):
        if self.is_trt(node.value) and node.attr not in PYTHON and not node.attr.startswith("__"):
            self.used.setdefault(node.attr, []).append(f"{self.path}:{node.lineno}")
            if self.guarding[-1]:
                self.guarded.add(node.attr)
        self.generic_visit(node)

    def visit_Call(self, node):
        if _guard(node):
            self.guarded.add(node.args[1].value)
        self.generic_visit(node)


def _guard(node):
    """hasattr(x, "NAME") or getattr(x, "NAME", default)."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and (node.func.id == "hasattr" or (node.func.id == "getattr" and len(node.args) == 3)))


def _early_return_unless_hasattr(stmt):
    return (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.UnaryOp) and isinstance(stmt.test.op, ast.Not)
            and _guard(stmt.test.operand) and isinstance(stmt.body[-1], (ast.Return, ast.Raise)))


def uses():
    used, guarded = {}, set()
    for src in SOURCES:
        full = os.path.join(ROOT, src)
        files = [full] if full.endswith(".py") else [os.path.join(full, f) for f in sorted(os.listdir(full))
                                                     if f.endswith(".py")]
        for path in files:
            with open(path) as f:
                v = Uses(os.path.relpath(path, ROOT))
                v.visit(ast.parse(f.read(), path))
            for name, where in v.used.items():
                used.setdefault(name, []).extend(where)
            guarded |= v.guarded
    return used, guarded


def test_the_rule_finds_tensorrt_names():
    used, guarded = uses()
    for name in ("Builder", "create_network", "add_convolution_nd", "BuilderFlag", "REFIT", "get_tensor_name",
                 "execute_async_v3", "set_input_shape", "Refitter", "refit_cuda_engine", "create_runtime_config",
                 "num_layers", "get_layer", "kernel"):
        assert name in used, name
    assert {"IRuntimeCache", "get_engine_validity", "IProgressMonitor"} <= guarded


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_tensorrt_name_exists_or_is_handled(flavour):
    names = flavour_names(FLAVOURS[flavour])
    used, guarded = uses()
    listed = unsupported_in_readme()
    missing = {n: w for n, w in used.items() if n not in names and n not in guarded and n not in listed}
    assert not missing, (f"names {flavour} lacks, neither guarded (hasattr, getattr with a default) nor listed in "
                         "README.md's trt-names section: " +
                         "; ".join(f"{n} ({', '.join(w[:2])})" for n, w in sorted(missing.items())))


def test_the_readme_list_does_not_rot():
    """Each listed name is still used and still missing from a flavour that the line names."""
    used, _ = uses()
    tables = {f: flavour_names(file) for f, file in FLAVOURS.items()}
    for name, line in unsupported_in_readme().items():
        assert name in used, f"README lists {name}, which trtnet no longer uses"
        lacking = [f for f, names in tables.items() if name not in names]
        assert lacking and all(f in line for f in lacking), f"{line!r}: {name} is missing from {lacking}"


def test_the_doubles_api_is_the_installed_bindings():
    """tests/data/trt_runtime_api_rtx17.json, which the runtime doubles are made from, is what the installed
    TensorRT-RTX says (rerun scripts/trt_names.py --runtime-api tensorrt_rtx after an upgrade)."""
    rtx = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed here")
    import sys
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from trt_names import runtime_api
    with open(os.path.join(ROOT, "tests", "data", "trt_runtime_api_rtx17.json")) as f:
        committed = json.load(f)
    committed.pop("names")
    assert runtime_api(rtx) == committed
