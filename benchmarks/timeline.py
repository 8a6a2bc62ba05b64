"""Where `python -m trtnet.build MODEL` spends its time, step by step, and its peak memory.

  python benchmarks/timeline.py                  # resnet50 from a .safetensors file, with and without --no-verify
  python benchmarks/timeline.py --model resnet18

Each run is a fresh process (import costs included) whose parts come from the command's own timeline:
import (Python start-up to the command's start), import model, import torch, load weights, record, emit,
TensorRT build, write, verify; peak RSS from the kernel's accounting of the finished child."""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def child(args, cwd):
    """(wall seconds, peak RSS bytes, stdout) of one command in a fresh process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([sys.executable, *args], cwd=cwd, env=ENV, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own peak, not the largest of all children
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if status != 0:
            sys.exit(f"{' '.join(args)} failed:\n{err.read()[-2000:]}")
        return wall, usage.ru_maxrss * 1024, out.read()


def parts(stdout):
    m = re.search(r"^\s*time\s+(.*)$", stdout, re.M)
    return [(k, float(v)) for k, v in re.findall(r"([A-Za-z][A-Za-z ]*?) ([0-9.]+) s", m.group(1))] if m else []


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--dir", default=os.path.join(ROOT, "weights"), help="where the .safetensors file is (or goes)")
    args = p.parse_args()
    weights = os.path.join(args.dir, f"{args.model}.safetensors")
    if not os.path.exists(weights):
        wall, _, _ = child([os.path.join(ROOT, "scripts", "export_wts.py"), args.model, "--format", "safetensors",
                            "-o", weights], ROOT)
        print(f"exported {weights} in {wall:.1f} s")
    start_up, _, _ = child(["-c", "import trtnet"], ROOT)
    for label, extra in (("with verification", []), ("without verification", ["--no-verify"])):
        out = os.path.join("/tmp", f"timeline-{os.getpid()}.engine")
        wall, peak, stdout = child(["-m", "trtnet.build", args.model, "--weights", weights, "--batch", "1,2,4",
                                    "-o", out, "-q", *extra], ROOT)
        os.unlink(out)
        steps = parts(stdout)
        counted = sum(v for _, v in steps)
        print(f"trtnet.build {args.model} {label}: {wall:.2f} s wall, peak RSS {peak / 2**20:.0f} MiB")
        print(f"  {'python + import trtnet':24s} {start_up:6.2f} s")
        for k, v in steps:
            print(f"  {k:24s} {v:6.2f} s")
        print(f"  {'rest (start-up, report)':24s} {max(wall - counted - start_up, 0):6.2f} s")


if __name__ == "__main__":
    main()
