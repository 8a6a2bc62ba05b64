"""Pieces shared by the `python -m trtnet.build` and `python -m trtnet.check` command lines.

Arguments are parsed and validated here before torch or TensorRT load, so that `--help` and typing mistakes
answer at once; errors become one `error:` line (a traceback with -v or TRTNET_DEBUG=1)."""
import argparse
import os
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager

from .errors import TrtnetError
from .events import Listener
from .files import PENDING

FLAVOURS = ("tensorrt", "tensorrt_rtx")   # as trtnet.backend.FLAVOURS, without importing it
INT32_MAX = 2**31 - 1                     # TensorRT dimensions are int32 in profiles
MAX_WORKSPACE_MB = 1 << 22                # 4 TiB
GRACE_S = 1.5                             # after a signal, how long the main thread gets to clean up itself
SHAPES_HELP = """shapes:
  --shapes NAME:MIN,OPT,MAX gives one input's optimization profile as whole shapes (trtexec style), e.g.
      --shapes images:1x3x320x320,8x3x640x640,16x3x1280x1280
  dimensions separated by 'x', shapes by ','; one shape alone fixes min = opt = max. The named dimensions of the model's inputs take their (min, opt, max) from it;
  its fixed dimensions must match. Several inputs: separate them by spaces or repeat --shapes. Several
  profiles: separate them by ';' or give each further profile with --profile.
  --batch MIN,OPT,MAX is the shorthand for the batch dimension 'N' alone (MAX alone means 1,MAX,MAX)."""


class UsageError(TrtnetError):
    """A command line argument that cannot work."""


def parser(prog, description, epilog=""):
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=(epilog + "\n\n" + SHAPES_HELP).strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", metavar="MODEL|FILE.py[:NAME]",
                   help="zoo model name (see --list), or a model file of your own that registers models "
                        "with `from trtnet.zoo import register`")
    p.add_argument("--weights", metavar="PATH",
                   help="weights file (.wts, .safetensors, .pth/.pt); default weights/MODEL.wts, "
                        "else the .safetensors or .pth beside it (or beside the model file)")
    p.add_argument("--shapes", action="append", default=[], metavar="NAME:MIN,OPT,MAX",
                   help="an input's profile as shapes (see below); repeatable")
    p.add_argument("--profile", action="append", default=[], metavar="SHAPES",
                   help="a further optimization profile, written as --shapes; repeatable")
    p.add_argument("--batch", metavar="MIN,OPT,MAX", help="profile of the batch dimension N")
    p.add_argument("--device", default="0", metavar="N", help="GPU that runs the engine (default 0)")
    p.add_argument("--backend", choices=FLAVOURS, help="TensorRT flavour; default $TRTNET_BACKEND, else the first "
                                                       "that imports")
    p.add_argument("--list", action="store_true", help="list the zoo's models and exit")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", help="TensorRT's info messages; tracebacks on errors")
    g.add_argument("-q", "--quiet", action="store_true", help="only results and errors")
    return p


# argument values -------------------------------------------------------------------------------------------
def count(text, what, lo=1, hi=INT32_MAX):
    """An integer in [lo, hi] from the user's `text`, else a UsageError echoing it."""
    try:
        v = int(str(text).strip())
    except ValueError:
        raise UsageError(f"{what}: expected an integer, got {text!r}") from None
    if not lo <= v <= hi:
        raise UsageError(f"{what}: {text!r} is out of range (expected {lo} to {hi})")
    return v


def check_half(args, advise=False):
    """--fp16/--bf16 with --keep-fp32 (and check's --advise): one half precision, not with a quantization mode
    (those choose their own), and the layers kept in fp32 only where a half precision is asked for."""
    if args.fp16 and args.bf16:
        raise UsageError("--fp16 and --bf16: choose one half precision")
    if args.bf16 and args.quant["quantize"]:
        raise UsageError(f"--bf16 with --{args.quant['quantize']}: quantized networks compute in fp32 or fp16")
    if (args.keep_fp32 or advise and not args.quant["quantize"]) and not (args.fp16 or args.bf16):
        raise UsageError(f"{'--advise' if advise else '--keep-fp32'} applies to a half-precision network: add "
                         "--fp16 or --bf16")


def parse_batch(text, what="--batch"):
    """MIN,OPT,MAX (or MAX alone: 1,MAX,MAX) with 1 <= MIN <= OPT <= MAX < 2**31."""
    parts = str(text).split(",")
    if len(parts) not in (1, 3):
        raise UsageError(f"{what}: expected MIN,OPT,MAX or MAX, got {text!r}")
    vals = [count(v, what if len(parts) == 1 else f"{what} {text!r}") for v in parts]
    if len(vals) == 1:
        vals = [1, vals[0], vals[0]]
    if not vals[0] <= vals[1] <= vals[2]:
        raise UsageError(f"{what}: {text!r} must satisfy MIN <= OPT <= MAX")
    return tuple(vals)


def parse_dims(text, what="--shape"):
    """One shape: 1x32x32 or 1,32,32."""
    parts = re.split(r"[x,]", str(text).strip())
    if not text or not all(parts):
        raise UsageError(f"{what}: expected dimensions such as 1x32x32 or 1,32,32, got {text!r}")
    return tuple(count(v, what if len(parts) == 1 else f"{what} {text!r}", 0) for v in parts)


def parse_workspace(text):
    return None if text is None else count(text, "--workspace (MiB)", 1, MAX_WORKSPACE_MB)


def parse_device(text):
    return count(text, "--device", 0, 1 << 16)


def parse_shapes(shapes, profiles=()):
    """[[(input name, (min shape, opt shape, max shape), text the user typed)]], one list per profile."""
    texts = [" ".join(shapes)] if shapes else []
    out = []
    for t in texts + list(profiles):
        for part in t.split(";"):
            entries = [_shape_entry(e) for e in part.split()]
            if entries:
                out.append(entries)
    return out


def _shape_entry(text):
    name, sep, rest = text.rpartition(":")
    if not sep or not name:
        raise UsageError(f"--shapes: expected NAME:MIN,OPT,MAX (shapes like 1x3x224x224), got {text!r}")
    shapes = [_x_dims(s, text) for s in rest.split(",")]
    if len(shapes) == 1:
        shapes = shapes * 3
    if len(shapes) != 3 or len({len(s) for s in shapes}) != 1:
        raise UsageError(f"--shapes {text!r}: expected MIN,OPT,MAX shapes of one rank")
    return name, tuple(shapes), text


def _x_dims(s, text):
    parts = s.split("x")
    if not all(parts):
        raise UsageError(f"--shapes {text!r}: expected shapes such as 1x3x224x224, got {s!r}")
    return tuple(count(v, f"--shapes {text!r}", 0) for v in parts)


def to_profiles(graph, parsed, batch=None):
    """Per-dimension profiles [{dim: (min, opt, max)}] from parse_shapes' entries matched against the graph's
    inputs, `batch` = (min, opt, max) of "N" where not given there; None leaves the graph's own ranges."""
    if not parsed:
        return None if batch is None else [{"N": batch}] if "N" in graph.dims else _no_batch(graph)
    inputs = {n.name: n for n in graph.inputs}
    profiles = []
    for entries in parsed:
        prof, origin = {}, {}
        for name, shapes, text in entries:
            if name not in inputs:
                raise UsageError(f"--shapes {text!r}: '{graph.name}' has no input '{name}' "
                                 f"(inputs: {', '.join(_fmt_input(n) for n in inputs.values())})")
            _match(inputs[name], shapes, text, prof, origin)
        if batch is not None and "N" in graph.dims and "N" not in prof:
            prof["N"] = batch
        profiles.append(prof)
    return profiles


def _no_batch(graph):
    raise UsageError(f"--batch: '{graph.name}' has no batch dimension N (inputs: "
                     f"{', '.join(_fmt_input(n) for n in graph.inputs)})")


def _fmt_input(n):
    from .shape import fmt_shape
    return f"{n.name} {fmt_shape(n.shape)}"


def _match(node, shapes, text, prof, origin):
    """Fill `prof` with the ranges of `node`'s named dimensions; fixed ones must equal the user's."""
    from .shape import is_static
    if len(shapes[0]) != len(node.shape):
        raise UsageError(f"--shapes {text!r}: input {_fmt_input(node)} has rank {len(node.shape)}, "
                         f"the shapes have {len(shapes[0])} dimensions")
    for axis, d in enumerate(node.shape):
        rng = tuple(s[axis] for s in shapes)
        if not rng[0] <= rng[1] <= rng[2]:
            raise UsageError(f"--shapes {text!r}: axis {axis} must satisfy min <= opt <= max, got {rng}")
        if is_static(d):
            if set(rng) != {int(d)}:
                raise UsageError(f"--shapes {text!r}: axis {axis} of input {_fmt_input(node)} is fixed at {d}, "
                                 f"got {'/'.join(map(str, rng))}")
            continue
        key = str(d)
        if not key.isidentifier():
            continue  # a derived size: TensorRT checks it at run time
        if key in prof and prof[key] != rng:
            raise UsageError(f"--shapes: dimension '{key}' is {'/'.join(map(str, prof[key]))} in {origin[key]!r} "
                             f"but {'/'.join(map(str, rng))} in {text!r}")
        prof[key], origin[key] = rng, text


# output paths ------------------------------------------------------------------------------------------------
def check_output(path, what="-o"):
    """Refuse, before any work, an output that names a directory, a device or a path under a file."""
    full = os.path.realpath(path)
    if os.path.exists(full) and not os.path.isfile(full):
        kind = "a directory" if os.path.isdir(full) else "not a regular file"
        raise UsageError(f"{what} {path!r}: {full if full != os.path.abspath(path) else 'it'} is {kind}; "
                         "give a file name")
    d = os.path.dirname(full)
    while d and not os.path.exists(d):
        d = os.path.dirname(d)
    if d and not os.path.isdir(d):
        raise UsageError(f"{what} {path!r}: {d} is a file, not a directory")


def check_input_file(path, what):
    if path is not None and not os.path.isfile(path):
        reason = "is a directory" if os.path.isdir(path) else "does not exist"
        raise UsageError(f"{what} {path!r}: {reason}; expected a file")


# running a command ---------------------------------------------------------------------------------------------
class Interrupted(BaseException):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _signame(signum):
    return signal.Signals(signum).name


class Timeline(Listener):
    """Listens to a command's events: how long each phase takes (self time: nested phases are not counted
    twice), the phase running now (named when a signal stops it) and, on a terminal, a bar for phases that
    report progress and an elapsed-time line for any other phase over a second."""

    OWN_PROGRESS = {"TensorRT build"}   # TensorRT's progress monitor draws its own bars

    def __init__(self, show=None):
        self.show = sys.stderr.isatty() if show is None else show
        self.seconds, self.stack, self.failed_in, self.finished_parts = {}, [], None, []
        self.tickers, self.bars = {}, {}

    @property
    def current(self):
        """The innermost phase running now, or the one an exception left."""
        return self.stack[-1] if self.stack else self.failed_in or "starting"

    def started(self, phase):
        self.stack.append(phase)
        if self.show and phase not in self.OWN_PROGRESS:
            self.tickers[len(self.stack)] = _Ticker(phase, lambda n=len(self.stack): len(self.stack) == n
                                                     and phase not in self.bars)

    def progress(self, phase, done, total):
        if not self.show or phase in self.OWN_PROGRESS:
            return
        bar = self.bars.get(phase)
        if bar is None:
            from tqdm import tqdm
            bar = self.bars[phase] = tqdm(desc=phase, total=total, leave=False, file=sys.stderr)
        bar.total = max(total, done)
        bar.update(done - bar.n)

    def finished(self, phase, seconds, error):
        ticker, bar = self.tickers.pop(len(self.stack), None), self.bars.pop(phase, None)
        for x in (ticker, bar):
            if x is not None:
                x.close()
        if error is not None:
            self.failed_in = self.failed_in or phase
        self.stack.pop()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
        if phase not in self.finished_parts:
            self.finished_parts.append(phase)
        if self.stack:
            parent = self.stack[-1]
            self.seconds[parent] = self.seconds.get(parent, 0.0) - seconds

    def summary(self):
        """The phases in the order they first finished (a phase holding others comes after them)."""
        return "  time     " + ", ".join(f"{k} {max(self.seconds[k], 0):.2f} s" for k in self.finished_parts)


class _Ticker:
    """A tqdm line with the elapsed time, shown once a part has run for a second while no part inside it runs."""

    def __init__(self, name, innermost):
        self.name, self.innermost, self.done, self.bar = name, innermost, threading.Event(), None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        if self.done.wait(1.0):
            return
        from tqdm import tqdm
        while not self.done.wait(0.25):
            if self.bar is None and self.innermost():
                self.bar = tqdm(desc=self.name, bar_format="{desc}: {elapsed}", leave=False, file=sys.stderr)
            if self.bar is not None:
                self.bar.refresh()

    def close(self):
        self.done.set()
        if self.bar is not None:
            self.bar.close()


class Signals:
    """SIGINT and SIGTERM: raise Interrupted where Python runs; inside a TensorRT progress callback only set
    `signum` (the monitor then asks TensorRT to stop); and if the main thread is still busy after GRACE_S
    (inside native code), remove pending files and exit from a watcher thread."""

    def __init__(self, timeline):
        self.timeline, self.signum = timeline, None

    def install(self):
        r, w = os.pipe()
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)  # written at C level even while the main thread is inside TensorRT
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handler)
        threading.Thread(target=self._watch, args=(r,), daemon=True).start()
        from . import backend
        backend.configure(cancel=lambda: self.signum is not None)

    def _handler(self, signum, frame):
        if self.signum is None:
            self.signum = signum
        f = frame
        while f is not None:
            if f.f_code.co_name in ("step_complete", "phase_start", "phase_finish"):
                return  # never raise into TensorRT: the monitor's answer stops it
            f = f.f_back
        raise Interrupted(signum)

    def _watch(self, r):
        while True:  # other signals with Python handlers write here too
            data = os.read(r, 1)
            if data and data[0] in (signal.SIGINT, signal.SIGTERM):
                break
        if self.signum is None:
            self.signum = data[0]
        time.sleep(GRACE_S)
        remove_pending()
        print(f"interrupted ({_signame(self.signum)}) while {self.timeline.current}", file=sys.stderr, flush=True)
        os._exit(128 + self.signum)


def remove_pending():
    for p in sorted(PENDING, key=len, reverse=True):  # files before the directories holding them
        try:
            os.rmdir(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        except OSError:
            pass
    PENDING.clear()


def _debug(args):
    return getattr(args, "verbose", False) or os.environ.get("TRTNET_DEBUG", "") not in ("", "0")


def _user_errors():
    """Errors that mean a mistake outside trtnet's code: TrtnetError (a model, weights file, argument), Python's
    for bad values and missing names, files and modules, and trtnet.runtime's for an engine that cannot run
    here (once that module is loaded)."""
    m = sys.modules.get("trtnet.runtime")
    return (TrtnetError, LookupError, ValueError, OSError, NotImplementedError, ImportError,
            *(getattr(m, n) for n in ("ExecutionError", "RefitError") if hasattr(m, n)))


def _user_frame(e):
    """file:line of the mistake behind `e` (or behind the exception it was raised from): the innermost frame in
    the user's own files (a model file, a script); else, unless a model, file, tensor or module was not found,
    the innermost frame in the zoo's model files. Never trtnet's own code (the package, its scripts), Python's
    or an installed package's."""
    pkg = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(pkg)
    own = tuple(d + os.sep for d in (pkg, os.path.join(root, "scripts"), os.path.dirname(os.__file__)))
    zoo_dir = os.path.join(root, "zoo") + os.sep   # the zoo's model files sit beside the package
    user = zoo = None
    for tb in (e.__traceback__, getattr(e.__cause__, "__traceback__", None)):
        while tb is not None:
            name = tb.tb_frame.f_code.co_filename
            f = os.path.abspath(name)
            if f.startswith(zoo_dir):
                zoo = (f, tb.tb_lineno)
            elif not (name.startswith("<") or f.startswith(own) or re.search(r"[/\\](site|dist)-packages[/\\]", f)):
                user = (f, tb.tb_lineno)
            tb = tb.tb_next
        if user or zoo:
            break
    if user is None and isinstance(e, (LookupError, OSError, ImportError)):
        zoo = None
    f, line = user or zoo or (None, None)
    return f and f"{f if os.path.relpath(f).startswith('..') else os.path.relpath(f)}:{line}"


def message(e, where=True):
    """One line for an exception: its first line, after the user's file:line (see _user_frame) where it names
    none; `where=False` leaves the place out, for a message that wraps this one."""
    text = e.args[0] if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str) else str(e)
    text = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    if isinstance(e, ModuleNotFoundError) and e.name:
        text = f"cannot import module '{e.name}': {text}"
    if not isinstance(e, _user_errors()):
        text = f"{type(e).__name__}: {text}"
    place = where and not re.search(r"\.py:\d+", text) and _user_frame(e)
    return f"{place}: {text}" if place else text


def command(argv, arguments, validate, run):
    """A command line's main: parse, validate before anything heavy loads, then `--list` or `run(args, timeline)`,
    through run_command."""
    args = arguments(argv)
    timeline = Timeline(show=None if not args.quiet else False)

    def go():
        validate(args)
        return list_models() if args.list else run(args, timeline)

    return run_command(args, go, timeline)


def run_command(args, fn, timeline):
    """Run `fn()` with signals handled (`timeline` names what a signal stops); every failure becomes one `error:`
    line (after its traceback with -v or TRTNET_DEBUG=1) and exit status 1."""
    signals = Signals(timeline)
    saved = [(s, signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM)]
    signals.install()
    try:
        return fn()
    except Interrupted as e:
        _stopped(e.signum, timeline)
    except KeyboardInterrupt:
        _stopped(signal.SIGINT, timeline)
    except Exception as e:  # noqa: BLE001  (every failure is reported; tracebacks on request)
        if signals.signum is not None:  # TensorRT stopped because the monitor asked it to
            _stopped(signals.signum, timeline)
        if _debug(args):
            import traceback
            traceback.print_exc()
        print(f"error: {message(e)}", file=sys.stderr)
        return 1
    finally:  # the caller's handlers again, for a command run inside another program
        signal.set_wakeup_fd(-1)
        for s, handler in saved:
            signal.signal(s, handler)


def _stopped(signum, timeline):
    """Say what was interrupted and exit at once: tearing down torch and TensorRT can take seconds."""
    remove_pending()
    print(f"interrupted ({_signame(signum)}) while {timeline.current}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(128 + signum)


def exit_now(code):
    """End the command once its output is flushed, without tearing down torch and TensorRT (a second or two
    of the command's time, for nothing)."""
    import logging
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a reader such as `head` has gone: it read what it wanted
            pass
    os._exit(code)


def setup(args):
    import logging
    level = logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from . import backend
    backend.configure(show=not args.quiet and sys.stderr.isatty())
    backend.select(args.backend)


def share_cores():
    """Fewer torch threads where other processes keep the cores busy: OpenMP's threads wait for each other
    at every operation, and with the cores taken that wait made a ResNet-50 forward 30x slower (5.2 s with 2
    threads, 0.17 s with 1, on 2 cores at load 9). The 1-minute load counts this process once."""
    import torch
    free = max(1, int(os.cpu_count() - os.getloadavg()[0] + 1))
    if free < torch.get_num_threads():
        torch.set_num_threads(free)


def list_models():
    from . import zoo
    for name in zoo.names():
        m = zoo.MODELS[name]
        shape = "x".join(map(str, m.input_shape))
        print(f"{name:22s} {shape:10s} {m.doc.splitlines()[0] if m.doc else ''}")
    return 0


def memory_needed(graph, profiles, cap_batch=None):
    """(bytes, shape env) of all recorded tensors at the largest profile shape: what running it takes."""
    import numpy as np
    worst = (0, {})
    for p in profiles:
        env = {k: v[2] for k, v in p.items()}
        if cap_batch and "N" in env:
            env["N"] = min(env["N"], max(cap_batch, p["N"][0]))
        total = 0
        for n in graph.nodes:
            try:
                size = int(np.prod([int(v) for v in graph.concrete(n, env)], dtype=np.float64))
            except Exception:  # noqa: BLE001  (a size the recorder could not express: not counted)
                continue
            total += size * np.dtype(n.dtype if n.dtype != "bfloat16" else "float16").itemsize
        worst = max(worst, (total, env), key=lambda t: t[0])
    return worst


def available_memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def guard_memory(graph, profiles, cap_batch=None, refuse=True):
    """Refuse (or warn about) a profile whose largest shape would not fit in this machine's memory."""
    need, env = memory_needed(graph, profiles, cap_batch)
    have = available_memory()
    if have is None or need <= have:
        return
    at = ", ".join(f"{k}={v}" for k, v in env.items())
    text = (f"the profile's largest shape ({at}) needs about {need / 2**30:.1f} GiB for '{graph.name}''s tensors, "
            f"{have / 2**30:.1f} GiB is available")
    if refuse:
        raise UsageError(text + "; give a smaller --batch or --shapes")
    print(f"warning: {text}", file=sys.stderr)
