"""The package's structure, read from its source: no module replaces another's attributes at run time, and
trtnet's modules import each other without a circle (lazy imports of torch and TensorRT aside)."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "trtnet")


def modules():
    """{dotted name: path} of every module of the trtnet package."""
    out = {}
    for d, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), ROOT)[:-3].split(os.sep)
                out[".".join(rel[:-1] if rel[-1] == "__init__" else rel)] = os.path.join(d, f)
    return out


MODULES = modules()


def _base(name, path, level):
    """The package a relative import of `level` dots starts from."""
    parts = name.split(".")
    if not path.endswith("__init__.py"):
        parts = parts[:-1]
    return ".".join(parts[:len(parts) - level + 1])


def imports(name, path):
    """(imported trtnet module, line) for every import in the module, module-level and inside functions."""
    found = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(name, path, node.level) if node.level else node.module
            if node.level and node.module:
                base = f"{base}.{node.module}"
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((sub if sub in MODULES else base, node.lineno))
    return [(m, line) for m, line in found if m in MODULES and m != "trtnet"]


def cycles():
    graph = {m: sorted({t for t, _ in imports(m, p)} - {m}) for m, p in MODULES.items()}
    seen, stack, found = set(), [], []

    def visit(m):
        if m in stack:
            found.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for t in graph[m]:
            if not (m.startswith(t + ".") or t.startswith(m + ".") and m.count(".") == 0):
                visit(t)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    return found


def test_trtnet_modules_import_each_other_without_a_circle():
    assert cycles() == []


def test_the_cycle_finder_finds_a_planted_circle(monkeypatch):
    planted = dict(MODULES)
    monkeypatch.setitem(globals(), "MODULES", planted)
    real = imports

    def with_circle(name, path):
        extra = {"trtnet.shape": [("trtnet.graph", 1)], "trtnet.graph": [("trtnet.shape", 1)]}
        return real(name, path) + extra.get(name, [])

    monkeypatch.setitem(globals(), "imports", with_circle)
    assert any({"trtnet.shape", "trtnet.graph"} <= set(c) for c in cycles())


def _patches(path):
    """(line, text) of assignments to an attribute of an imported module, and setattr calls on one."""
    tree = ast.parse(open(path).read())
    mods = set()   # names bound to trtnet's modules or the libraries it drives
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.asname or a.name.split(".")[0] for a in node.names
                     if a.name.split(".")[0] in ("trtnet", "torch", "tensorrt", "tensorrt_rtx", "numpy")}
        elif isinstance(node, ast.ImportFrom):
            mods |= {a.asname or a.name for a in node.names if node.level and not node.module
                     or f"{node.module}.{a.name}" in MODULES or node.module in ("torch", "torch.nn")}
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in mods:
                found.append((node.lineno, ast.unparse(t)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" \
                and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in mods:
            found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_replaces_another_modules_attributes(name):
    assert _patches(MODULES[name]) == []


def test_the_patch_finder_finds_a_planted_patch(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os, torch\nfrom trtnet import engine\nengine.build_engine = None\nsetattr(torch, 'relu', None)\n"
                 "x = engine.build_engine\nos.sep = '/'\n")
    assert [line for line, _ in _patches(str(f))] == [3, 4]
