"""Where `python -m trtnet.build MODEL` spends its time, step by step, and its peak memory.

  python benchmarks/timeline.py                  # resnet50 from a .safetensors file, with and without --no-verify
  python benchmarks/timeline.py --model resnet18
  python benchmarks/timeline.py --smoke          # squeezenet1_1, weights in a temporary directory: quick

Each run is a fresh process (import costs included, engine cache off) whose parts come from the command's own
timeline (its last line, `  time     PART X.XX s, PART X.XX s, ...`: whatever parts it names); peak RSS and CPU
seconds from the kernel's accounting of the finished child. The libraries' baseline is the peak of a process
that imports trtnet and builds a one-layer engine with trtnet.build; the weights are the .safetensors file's size.
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
import os, sys, trtnet
g = trtnet.Graph("one")
g.output(trtnet.relu(g.input("x", (3, 8, 8))), "y")
trtnet.build(g, output=sys.argv[1], verify=False, progress=False)
os.unlink(sys.argv[1])
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
    """[(part, seconds)] from the command's last line, `  time     PART X.XX s, PART X.XX s, ...`."""
    last = (stdout.strip().splitlines() or [""])[-1]
    m = re.fullmatch(r"\s*time\s+(.*)", last)
    found = [re.fullmatch(r"(.+) ([0-9]+\.[0-9]+) s", p.strip()) for p in m.group(1).split(",")] if m else [None]
    if not all(found):
        sys.exit(f"error: trtnet.build's last line is not `  time     PART X.XX s, ...`: {last!r}")
    return [(f.group(1), float(f.group(2))) for f in found]


def export(model, weights):
    """Seeded weights of the zoo model, written as .safetensors."""
    from trtnet import harness, save_safetensors
    os.makedirs(os.path.dirname(os.path.abspath(weights)), exist_ok=True)
    save_safetensors(harness.export_state(model), weights)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--dir", default=os.path.join(ROOT, "weights"), help="where the .safetensors file is (or goes)")
    p.add_argument("--smoke", action="store_true", help="squeezenet1_1, weights in a temporary directory: quick")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            args.model, args.dir = "squeezenet1_1", tmp
        run(args.model, os.path.join(args.dir, f"{args.model}.safetensors"), tmp)


def run(model, weights, tmp):
    if not os.path.exists(weights):
        start = time.perf_counter()
        export(model, weights)
        print(f"exported {weights} in {time.perf_counter() - start:.1f} s")
    start_up, *_ = child(["-c", "import trtnet"], ROOT)
    _, base, _, _ = child(["-c", BASELINE, os.path.join(tmp, "one.engine")], ROOT)
    _, base_torch, _, _ = child(["-c", "import torch, torchvision" + BASELINE, os.path.join(tmp, "one.engine")], ROOT)
    size = os.path.getsize(weights)
    print(f"libraries' baseline {base / 2**20:.0f} MiB peak RSS, {base_torch / 2**20:.0f} MiB with torch and "
          f"torchvision (what verification loads); weights {size / 2**20:.0f} MiB")
    cpus = {}
    for label, extra in (("with verification", []), ("without verification", ["--no-verify"])):
        libraries = base if extra else base_torch
        out = os.path.join(tmp, f"{model}.engine")
        wall, peak, stdout, cpu = child(["-m", "trtnet.build", model, "--weights", weights, "--batch", "1,2,4",
                                         "-o", out, "-q", "--no-engine-cache", *extra], ROOT)
        os.unlink(out)
        steps = parts(stdout)
        counted = sum(v for _, v in steps)
        cpus[label] = cpu
        print(f"trtnet.build {model} {label}: {wall:.2f} s wall ({cpu:.2f} s CPU), peak RSS "
              f"{peak / 2**20:.0f} MiB = libraries + {(peak - libraries) / size:.1f} x the weights")
        print(f"  {'python + import trtnet':24s} {start_up:6.2f} s")
        for k, v in steps:
            print(f"  {k:24s} {v:6.2f} s")
        print(f"  {'rest (start-up, report)':24s} {max(wall - counted - start_up, 0):6.2f} s")
        trt_build = dict(steps).get("TensorRT build")
        if trt_build:
            print(f"  trtnet's own share: {wall - trt_build:.2f} s beside TensorRT's {trt_build:.2f} s "
                  f"({(wall - trt_build) / trt_build:.1f}x)")
    print(f"verified CPU seconds {cpus['with verification'] / cpus['without verification']:.1f}x the unverified")


if __name__ == "__main__":
    main()
