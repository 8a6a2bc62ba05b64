"""Write a zoo model's PyTorch weights for `python -m trtnet.build`.

  python scripts/export_wts.py lenet                      # trains LeNet for a few seconds on bundled digits
  python scripts/export_wts.py resnet50                   # seeded random init, non-trivial BatchNorm statistics
  python scripts/export_wts.py resnet50 --checkpoint resnet50.pth --format safetensors

Nothing is downloaded: checkpoints come from a file you give.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from trtnet import zoo  # noqa: E402
from trtnet.cli import main_guard  # noqa: E402
from trtnet.weights import save_safetensors, save_wts  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(prog="export_wts.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="zoo model name")
    p.add_argument("--checkpoint", metavar="PTH", help="state_dict or checkpoint (.pth/.pt/.safetensors/.wts) to export")
    p.add_argument("--format", choices=("wts", "safetensors"), default="wts", help="output format (default wts)")
    p.add_argument("-o", "--output", metavar="PATH", help="output file (default weights/MODEL.FORMAT)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random init or the training (default 0)")
    p.add_argument("--list", action="store_true", help="list the zoo's models")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(zoo.names()))
        return 0
    if not args.model:
        p.error("a model name is required (or --list)")

    def run():
        start = time.perf_counter()
        state = zoo.export_state(args.model, args.checkpoint, args.seed)
        out = args.output or os.path.join("weights", f"{args.model}.{args.format}")
        (save_wts if args.format == "wts" else save_safetensors)(state, out)
        n = sum(v.size for v in state.values())
        print(f"wrote {out}: {len(state)} tensors, {n:,} values, {os.path.getsize(out) / 2**20:.1f} MiB "
              f"in {time.perf_counter() - start:.1f} s")
        return 0

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
