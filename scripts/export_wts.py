"""Write a model's PyTorch weights for `python -m trtnet.build`.

  python scripts/export_wts.py lenet                      # trains LeNet for a few seconds on bundled digits
  python scripts/export_wts.py resnet50                   # seeded random init, non-trivial BatchNorm statistics
  python scripts/export_wts.py resnet50 --checkpoint resnet50.pth --format safetensors   # or pth
  python scripts/export_wts.py mymodel.py:tiny            # a model file of your own (default: weights/tiny.wts)

Nothing is downloaded: checkpoints come from a file you give.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from trtnet import cli, weights  # noqa: E402

WRITERS = {"wts": weights.save_wts, "safetensors": weights.save_safetensors, "pth": weights.save_pth}


def arguments(argv):
    p = argparse.ArgumentParser(prog="export_wts.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", metavar="MODEL|FILE.py[:NAME]", help="zoo model name or model file")
    p.add_argument("--checkpoint", metavar="PTH", help="state_dict or checkpoint (.pth/.pt/.safetensors/.wts) to export")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="unpickle an Ultralytics .pt checkpoint "
                        "(whole Python objects: loading it runs code from the file)")
    p.add_argument("--format", choices=tuple(WRITERS), default="wts", help="output format (default wts)")
    p.add_argument("-o", "--output", metavar="PATH", help="output file (default weights/MODEL.FORMAT)")
    p.add_argument("--seed", default="0", help="seed for the random init or the training (default 0)")
    p.add_argument("--list", action="store_true", help="list the zoo's models")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    args = p.parse_args(argv)
    if not args.list and not args.model:
        p.error("a model name or file is required (or --list)")
    return args


def export(args, timeline):
    from trtnet import harness, zoo
    from trtnet.events import Events
    from zoo import yolo
    start, events = time.perf_counter(), Events(timeline)
    with events.phase("import model"):
        name = zoo.get(args.model).name
    with events.phase("export"):
        if args.checkpoint and name in yolo.VARIANTS and args.checkpoint.endswith(".pt"):
            state = yolo.ultralytics_state(args.checkpoint, trust=args.trust_checkpoint)
        else:
            state = harness.export_state(args.model, args.checkpoint, args.seed)
    out = args.output or os.path.join("weights", f"{name}.{args.format}")
    with events.phase("write"):
        WRITERS[args.format](state, out)
    n = sum(v.size for v in state.values())
    print(f"wrote {out}: {len(state)} tensors, {n:,} values, {os.path.getsize(out) / 2**20:.1f} MiB "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None):
    args = arguments(argv)
    timeline = cli.Timeline()

    def go():
        args.seed = cli.count(args.seed, "--seed", 0, 2**32 - 1)
        cli.check_input_file(args.checkpoint, "--checkpoint")
        if args.output:
            cli.check_output(args.output)
        if args.list:
            return cli.list_models()
        return export(args, timeline)

    return cli.run_command(args, go, timeline)


if __name__ == "__main__":
    sys.exit(main())
