"""Where `python -m trtnet.build MODEL` spends its time, step by step, and its peak memory.

  python benchmarks/timeline.py                  # resnet50 from a .safetensors file, with and without --no-verify
  python benchmarks/timeline.py --model resnet18

Each run is a fresh process (import costs included, engine cache off) whose parts come from the command's own
timeline: import TensorRT, import model, load weights, record, emit, TensorRT build, write and, when verifying,
import torch, PyTorch module, reference executor, PyTorch run, TensorRT network (interpreter); peak RSS and CPU
seconds from the kernel's accounting of the finished child. The libraries' baseline is the peak of a process
that imports trtnet and TensorRT and builds a one-layer engine; the weights are the .safetensors file's size.
On a busy machine wall times stretch: compare CPU seconds, and check `uptime`."""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


BASELINE = """
from trtnet import Graph, backend, engine, relu
backend.select(None)
g = Graph("one")
g.output(relu(g.input("x", (3, 8, 8))), "y")
engine.build_engine(g, progress=False)
"""


def child(args, cwd):
    """(wall seconds, peak RSS bytes, stdout, CPU seconds) of one command in a fresh process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([sys.executable, *args], cwd=cwd, env=ENV, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own peak, not the largest of all children
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if status != 0:
            sys.exit(f"{' '.join(args)} failed:\n{err.read()[-2000:]}")
        return wall, usage.ru_maxrss * 1024, out.read(), usage.ru_utime + usage.ru_stime


def parts(stdout):
    m = re.search(r"^\s*time\s+(.*)$", stdout, re.M)
    return [(k, float(v)) for k, v in re.findall(r"([A-Za-z][A-Za-z ()]*?) ([0-9.]+) s", m.group(1))] if m else []


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--dir", default=os.path.join(ROOT, "weights"), help="where the .safetensors file is (or goes)")
    args = p.parse_args()
    weights = os.path.join(args.dir, f"{args.model}.safetensors")
    if not os.path.exists(weights):
        wall, *_ = child([os.path.join(ROOT, "scripts", "export_wts.py"), args.model, "--format", "safetensors",
                            "-o", weights], ROOT)
        print(f"exported {weights} in {wall:.1f} s")
    start_up, *_ = child(["-c", "import trtnet"], ROOT)
    _, base, _, _ = child(["-c", BASELINE], ROOT)
    size = os.path.getsize(weights)
    print(f"libraries' baseline {base / 2**20:.0f} MiB peak RSS; weights {size / 2**20:.0f} MiB")
    for label, extra in (("with verification", []), ("without verification", ["--no-verify"])):
        out = os.path.join("/tmp", f"timeline-{os.getpid()}.engine")
        wall, peak, stdout, cpu = child(["-m", "trtnet.build", args.model, "--weights", weights, "--batch", "1,2,4",
                                         "-o", out, "-q", "--no-engine-cache", *extra], ROOT)
        os.unlink(out)
        steps = parts(stdout)
        counted = sum(v for _, v in steps)
        print(f"trtnet.build {args.model} {label}: {wall:.2f} s wall ({cpu:.2f} s CPU), peak RSS "
              f"{peak / 2**20:.0f} MiB = baseline + {(peak - base) / size:.1f} x the weights")
        print(f"  {'python + import trtnet':24s} {start_up:6.2f} s")
        for k, v in steps:
            print(f"  {k:24s} {v:6.2f} s")
        print(f"  {'rest (start-up, report)':24s} {max(wall - counted - start_up, 0):6.2f} s")
        trt_build = dict(steps).get("TensorRT build", 0.0)
        print(f"  trtnet's own share: {wall - trt_build:.2f} s beside TensorRT's {trt_build:.2f} s "
              f"({(wall - trt_build) / trt_build:.1f}x)" if trt_build else "")


if __name__ == "__main__":
    main()
