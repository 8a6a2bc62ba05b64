"""Which TensorRT: `tensorrt` (10+) or `tensorrt_rtx`, chosen once per process.

Both expose the same network-definition API for everything trtnet emits, so the rest of
the package asks `trt()` for the module and never imports either by name.
"""
import contextlib
import importlib
import logging
import os
import sys

from .errors import TrtnetError

FLAVOURS = ("tensorrt", "tensorrt_rtx")
ENV = "TRTNET_BACKEND"
log = logging.getLogger("trtnet.tensorrt")
_chosen = None


class BackendError(TrtnetError, RuntimeError):
    pass


def select(name=None):
    """Pick the TensorRT module: `name`, else $TRTNET_BACKEND, else the first of FLAVOURS that imports."""
    global _chosen
    name = name or os.environ.get(ENV) or None
    if name is not None and name not in FLAVOURS:
        raise BackendError(f"unknown TensorRT backend {name!r}: expected one of {', '.join(FLAVOURS)} "
                           f"(from --backend or ${ENV})")
    errors = []
    for cand in [name] if name else FLAVOURS:
        try:
            mod = importlib.import_module(cand)
            if cand == "tensorrt" and int(mod.__version__.split(".")[0]) < 10:
                raise ImportError(f"tensorrt {mod.__version__} is older than 10")
            _chosen = mod
            return mod
        except (ImportError, OSError) as e:
            errors.append(f"{cand}: {e}")
    raise BackendError("no usable TensorRT found (" + "; ".join(errors) +
                       "); install one with `pip install tensorrt-rtx-cu13` or `pip install 'tensorrt>=10'`")


def trt():
    return _chosen or select()


def flavour():
    m = trt()
    return f"{m.__name__} {m.__version__}"


def is_rtx():
    return trt().__name__ == "tensorrt_rtx"


_loggers = {}


def logger(t=None):
    """The ILogger of TensorRT module `t` (default: the chosen one) that forwards its messages to Python logging."""
    t = t or trt()
    if t not in _loggers:
        S = t.ILogger.Severity
        levels = {S.INTERNAL_ERROR: logging.CRITICAL, S.ERROR: logging.ERROR, S.WARNING: logging.WARNING,
                  S.INFO: logging.INFO, S.VERBOSE: logging.DEBUG}

        class PyLogger(t.ILogger):
            def __init__(self):
                t.ILogger.__init__(self)
                self.errors = []  # kept for error messages: TensorRT reports failures only through its log
                self.muted = False

            def log(self, severity, msg):
                if self.muted:
                    return
                level = levels.get(severity, logging.INFO)
                if level >= logging.ERROR:
                    self.errors.append(msg)
                log.log(level, msg)

        _loggers[t] = PyLogger()
    return _loggers[t]


@contextlib.contextmanager
def muted():
    """TensorRT's messages dropped: reading every attribute of a layer back asks for some that do not apply to
    its configuration (a dynamic resize's static shape), which TensorRT logs as errors while answering."""
    log_ = logger()
    before, log_.muted = log_.muted, True
    try:
        yield
    finally:
        log_.muted = before


SHOW = None          # progress bars: None = when stderr is a terminal
CANCEL = None        # () -> True once the build should stop (the command lines' signal handling)
_UNSET = object()


def configure(show=_UNSET, cancel=_UNSET):
    """Set whether TensorRT's progress bars show and what asks a build to stop."""
    global SHOW, CANCEL
    SHOW = SHOW if show is _UNSET else show
    CANCEL = CANCEL if cancel is _UNSET else cancel


def progress_monitor(stream=None, step=None):
    """An IProgressMonitor showing TensorRT's build phases as bars on a terminal (quiet elsewhere), telling
    `step(done, total)` the steps of each top-level phase, and asking TensorRT to stop once CANCEL() says so;
    None where the flavour lacks it."""
    t = trt()
    if not hasattr(t, "IProgressMonitor"):
        return None
    stream = stream or sys.stderr   # the one in use now: a program may have redirected it since import
    show = stream.isatty() if SHOW is None else SHOW

    class Progress(t.IProgressMonitor):
        def __init__(self):
            t.IProgressMonitor.__init__(self)
            self.phases = {}   # name -> (parent, depth, bar or None)

        def phase_start(self, phase_name, parent_phase, num_steps):
            depth = self.phases[parent_phase][1] + 1 if parent_phase in self.phases else 0
            bar = None
            if show and depth < 2:
                from tqdm import tqdm
                bar = tqdm(total=num_steps, desc=f"{'  ' * depth}build: {phase_name}", position=depth,
                           leave=False, file=stream)
            self.phases[phase_name] = (parent_phase, depth, bar, num_steps)

        def step_complete(self, phase_name, done):
            _, depth, bar, total = self.phases.get(phase_name, (None, 0, None, 0))
            if bar is not None:
                bar.update(done + 1 - bar.n)
            if step is not None and depth == 0:
                step(done + 1, total)
            return not (CANCEL is not None and CANCEL())

        def phase_finish(self, phase_name):
            bar = self.phases.pop(phase_name, (None, 0, None, 0))[2]
            if bar is not None:
                bar.close()

    return Progress()
