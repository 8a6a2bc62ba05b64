"""Time `.wts` reading and writing on a ResNet-50-sized file.

    python benchmarks/wts_load.py [--floats 26600000] [--repeat 3] [--keep PATH] [--smoke]

Writes seeded random float32 values split into tensors shaped like resnet50's state_dict (cycled or cut to
--floats), then times save_wts, load_weights (file in the page cache) and, for comparison,
`bytes.fromhex` on each line. `--smoke` times 200,000 floats once: it shows the script works, its figures
mean little.
"""
import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trtnet import load_weights, save_wts  # noqa: E402

CPP_MBPS = 120  # C++ `stream >> std::hex` loader, measured (shared/NOTES.md)


def resnet50_shapes():
    """(name, shape) of resnet50's state_dict, or 1 M-float blocks without torchvision."""
    try:
        import torchvision
    except ImportError:
        return [(f"block{i}.weight", (1 << 20,)) for i in range(26)]
    return [(k, tuple(v.shape)) for k, v in torchvision.models.resnet50().state_dict().items()]


def make_tensors(total, seed=0):
    """`total` floats in resnet50-shaped tensors: repeats get a `repN.` prefix, the last one is cut short."""
    rng, shapes, tensors, left, i = np.random.default_rng(seed), resnet50_shapes(), {}, total, 0
    while left:
        name, shape = shapes[i % len(shapes)]
        size = min(math.prod(shape), left)
        values = rng.standard_normal(size, dtype=np.float32)
        tensors[f"rep{i // len(shapes)}.{name}" if i >= len(shapes) else name] = (
            values.reshape(shape) if size == math.prod(shape) else values)
        left, i = left - size, i + 1
    return tensors


def fromhex_lines(path):
    """Baseline: `bytes.fromhex` on each line, then a big-endian float32 view."""
    out = {}
    with open(path, "rb") as f:
        for _ in range(int(f.readline())):
            name, _, values = f.readline().split(b" ", 2)
            out[name.decode()] = np.frombuffer(bytes.fromhex(values.decode()), ">f4").astype(np.float32)
    return out


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--floats", type=int, default=26_600_000, help="values in the file (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per step; the best counts")
    ap.add_argument("--keep", type=Path, help="write the file to PATH and leave it there")
    ap.add_argument("--smoke", action="store_true", help="200,000 floats, one run: quick, figures mean little")
    args = ap.parse_args()
    if args.smoke:
        args.floats, args.repeat = 200_000, 1
    tensors = make_tensors(args.floats)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "resnet50.wts"
        save_s, _ = best(lambda: save_wts(tensors, path), args.repeat)
        mb = path.stat().st_size / 1e6
        load_s, w = best(lambda: load_weights(path), args.repeat)
        base_s, ref = best(lambda: fromhex_lines(path), args.repeat)
    assert all(np.array_equal(w[k].view(np.uint32), ref[k].view(np.uint32)) for k in ref), "loaders disagree"
    print(f"file: {len(tensors)} tensors, {args.floats:,} floats, {mb:.1f} MB (best of {args.repeat})")
    print(f"save_wts:              {save_s:6.3f} s  {mb / save_s:6.0f} MB/s")
    print(f"load_weights:          {load_s:6.3f} s  {mb / load_s:6.0f} MB/s  ({mb / load_s / CPP_MBPS:.1f}x C++)")
    print(f"bytes.fromhex / line:  {base_s:6.3f} s  {mb / base_s:6.0f} MB/s  ({mb / base_s / CPP_MBPS:.1f}x C++)")
    print(f"C++ stream extraction (measured, NOTES): ~{CPP_MBPS} MB/s; target >= 3x = {3 * CPP_MBPS} MB/s: "
          f"{'met' if mb / load_s >= 3 * CPP_MBPS else 'NOT met'}")


if __name__ == "__main__":
    main()
