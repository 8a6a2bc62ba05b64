"""Per-tensor dumps, DIR/NAME.npy, written by `trtnet.run --dump` (an engine's debug tensors on a GPU) and by
`trtnet.check --save-outputs` (the interpreter's values), and compared layer by layer (`--compare-dumps A B`).

Names are percent-encoded (helper tensors are named `layer/what`); DIR/tensors.txt lists them in the order
they were written, which is the network's execution order."""
import os
from urllib.parse import quote, unquote

import numpy as np

from ..compare import compare
from .report import CheckReport, Row

INDEX = "tensors.txt"


def tensor_file(directory, name):
    return os.path.join(directory, quote(name, safe="") + ".npy")


def save_tensor(directory, name, value):
    """Write one tensor and append its name to the index. An .npy file cannot name ml_dtypes' types: bfloat16 and
    FP8 values are written as float32, INT4 ones as int8 (both exact)."""
    os.makedirs(directory, exist_ok=True)
    a = np.asarray(value)
    if a.dtype.type.__module__ == "ml_dtypes":
        a = a.astype(np.int8 if a.dtype.name == "int4" else np.float32)
    np.save(tensor_file(directory, name), a)
    with open(os.path.join(directory, INDEX), "a") as f:
        f.write(name + "\n")


def save_tensors(directory, values):
    for name, value in values.items():
        save_tensor(directory, name, value)


def load_tensors(directory):
    """{name: array} in the order written (files missing from the index last, by name)."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such dump directory")
    files = sorted(unquote(f[:-4]) for f in os.listdir(directory) if f.endswith(".npy"))
    index = os.path.join(directory, INDEX)
    listed = open(index).read().split("\n") if os.path.exists(index) else []
    names = list(dict.fromkeys([n for n in listed if n in set(files)] + files))
    return {n: np.load(tensor_file(directory, n)) for n in names}


def compare_dumps(actual, expected, tol):
    """A CheckReport of dump directory `actual` against `expected`, one row per tensor of `actual` in its order;
    tensors with no counterpart get no error."""
    got, want = load_tensors(actual), load_tensors(expected)
    rows, first_bad = [], None
    for name, value in got.items():
        row = Row(name, str(value.dtype), tuple(value.shape))
        if name in want:
            m = compare(value, want[name], tol)
            row.rel, row.note = m["rel"], m["note"]
            if row.rel > tol and first_bad is None:
                first_bad = name
        rows.append(row)
    common = sum(r.rel is not None for r in rows)
    if not common:
        raise ValueError(f"{actual} and {expected} have no tensor name in common")
    title = f"{actual} vs {expected}: {common} tensors in both, {len(got) - common} only in {actual}, " \
            f"{len(set(want) - set(got))} only in {expected}"
    return CheckReport(title, rows, {}, tol, first_bad)
