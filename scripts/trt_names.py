"""The names a TensorRT flavour's Python bindings define, as JSON for tests/test_trt_names.py.

    python scripts/trt_names.py --so tensorrt.so --flavour tensorrt --version 10.13.0.35 -o tests/data/trt_names_10.json
    python scripts/trt_names.py --module tensorrt_rtx -o tests/data/trt_names_rtx17.json
    python scripts/trt_names.py --runtime-api tensorrt_rtx -o tests/data/trt_runtime_api_rtx17.json

Full TensorRT's bindings (`pip download --no-deps --only-binary=:all: tensorrt-cu12-bindings==10.13.0.35`, or
tensorrt-cu13-bindings for 11.x; unzip the wheel) cannot be imported without TensorRT's libraries, but the
extension's read-only data holds every name pybind11 registers (classes, methods, properties, enum members) and
their docstrings: the identifiers found there are a superset of the defined names. An importable module is
read exactly, by dir() of the module, its classes and their enums. `--runtime-api` writes the runtime classes'
members with their documented signatures, and the enums they use: what tests/gpu_standin.py makes its
doubles from where TensorRT cannot be installed (a test checks it against the installed bindings)."""
import argparse
import importlib
import json
import re
import struct
import sys


def rodata(path):
    """The .rodata section of an ELF64 little-endian shared object."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        sys.exit(f"error: {path}: not an ELF64 shared object")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_at = sections[shstrndx][4]
    for name, _, _, _, offset, size in sections:
        if data[names_at + name:data.index(b"\0", names_at + name)] == b".rodata":
            return data[offset:offset + size]
    sys.exit(f"error: {path}: no .rodata section")


def names_in_so(path):
    return sorted({w.decode() for w in re.findall(rb"[A-Za-z_][A-Za-z0-9_]+", rodata(path))})


def names_in_module(module):
    names = set()
    for name in dir(module):
        if name.startswith("__"):
            continue
        names.add(name)
        obj = getattr(module, name)
        if isinstance(obj, type):
            names.update(n for n in dir(obj) if not n.startswith("__"))
            names.update(getattr(obj, "__members__", {}))
    return sorted(names)


RUNTIME_CLASSES = ("Runtime", "ICudaEngine", "IExecutionContext", "Refitter", "IRuntimeConfig", "IRuntimeCache")
RUNTIME_ENUMS = ("DataType", "TensorIOMode", "WeightsRole", "EngineValidity", "EngineInvalidityDiagnostics")


def runtime_api(module):
    """{"classes": {class: {member: None for a property, else its docstring's signature lines}}, "enums": ...}."""
    import inspect
    classes = {}
    for cname in RUNTIME_CLASSES:
        cls, members = getattr(module, cname), {}
        for name in dir(cls):
            if name.startswith("_") and name != "__init__":
                continue
            member = inspect.getattr_static(cls, name)
            if isinstance(member, property):
                members[name] = None
            elif callable(member):
                pattern = re.compile(rf"^\s*(?:\d+\.\s+)?{re.escape(name)}\(.*\)\s*->")
                members[name] = [line.strip() for line in (getattr(cls, name).__doc__ or "").splitlines()
                                 if pattern.match(line)]
        classes[cname] = members
    enums = {e: {k: int(v) for k, v in getattr(module, e).__members__.items()} for e in RUNTIME_ENUMS}
    return {"flavour": module.__name__, "version": module.__version__, "classes": classes, "enums": enums}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--so", help="the bindings' tensorrt.so (from the unzipped wheel)")
    src.add_argument("--module", help="an importable TensorRT module (tensorrt_rtx)")
    src.add_argument("--runtime-api", metavar="MODULE", help="the runtime classes' signatures and enums of MODULE")
    p.add_argument("--flavour", help="module name the .so stands for (tensorrt)")
    p.add_argument("--version", help="the bindings' version (the wheel's)")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    if args.runtime_api:
        doc = runtime_api(importlib.import_module(args.runtime_api))
        doc["names"] = sorted(doc["classes"])
    elif args.module:
        module = importlib.import_module(args.module)
        doc = {"flavour": args.module, "version": module.__version__, "exact": True,
               "names": names_in_module(module)}
    else:
        if not (args.flavour and args.version):
            p.error("--so needs --flavour and --version")
        doc = {"flavour": args.flavour, "version": args.version, "exact": False, "names": names_in_so(args.so)}
    with open(args.output, "w") as f:
        json.dump(doc, f, indent=0)
        f.write("\n")
    print(f"{args.output}: {len(doc['names'])} names of {doc['flavour']} {doc['version']}")


if __name__ == "__main__":
    main()
