"""The port's steps: capture, write, check, record; `trtnet.port` exposes them without importing torch."""
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .capture import PortError, default_inputs, example_tensors, kept, load_spec, offline, record_values, trace
from .codegen import generate
from .. import llm
from ..files import write_atomic

__all__ = ["port", "port_spec", "PortError", "PortResult"]


@dataclass
class PortResult:
    path: str
    weights: str
    code: str
    method: str               # "fx" or "export"
    seconds: float
    lines: int
    report: object = None     # trtnet.check report when checked
    extra: list = field(default_factory=list)   # folded constants stored beside the state_dict

    @property
    def ok(self):
        return self.report is None or self.report.ok


def port(module, example_inputs, output=None, name=None, weights=None, dynamic=None, factory=None,
         imports=(), check=False, source=None):
    """Write `module` as a trtnet model file.

    example_inputs: {input name: tensor} (or one tensor, named "x"); dynamic: {input name: axes} made symbolic
    besides the batch; factory: code of a no-argument callable rebuilding the module (the register call's
    PyTorch reference), with `imports` lines it needs. Returns a PortResult. Nothing is written on error: the
    code must record with the module's weights, reproduce the module at other sizes (the batch plus one, each
    dynamic axis doubled) and, with `check`, check against it."""
    t0 = time.perf_counter()
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = {"x": example_inputs}
    module = module.eval()
    _check_dynamic(example_inputs, dynamic or {})
    name = _identifier(name or (os.path.splitext(os.path.basename(output))[0] if output else
                                type(module).__name__.lower()))
    with kept(module):     # what the module's forward caches on itself is put back as it was
        gm, method = trace(module, example_inputs)
        values, eager = record_values(gm, example_inputs)
        other = _other_values(gm, example_inputs, module, dynamic or {})
        other = _other_sizes_kept(gm, example_inputs, dynamic or {}, module, values, other)
        with torch.no_grad():
            reference = module(**example_inputs)
        inputs, shape0 = _input_specs(example_inputs, dynamic or {}, module)
        header = [f"{source or type(module).__module__ + '.' + type(module).__qualname__} ported by trtnet.port "
                  f"(captured with {method}).",
                  "Inputs: " + ", ".join(f"{k} {'x'.join(map(str, v.shape))} {str(v.dtype).replace('torch.', '')}"
                                         for k, v in example_inputs.items()) +
                  f"; dynamic: {', '.join(['the batch N', *(d for spec in inputs for d in spec[2])])}.",
                  "Weights: the module's state_dict names, plus any constants folded from its parameters",
                  "and buffers (`*_folded`: recompute them when swapping weights)."]
        factory = factory or f"{type(module).__module__}.{type(module).__qualname__}"
        reg = [f"@register({name!r}, {shape0!r}, {factory})"]
        imps = list(imports) or [f"import {type(module).__module__.split('.')[0]}"]
        code, extra = generate(gm, module, values, inputs, _output_names(reference), name, header, reg, imps, other)
        result = PortResult(None, None, code, method, 0.0, code.count("\n"), extra=sorted(extra))
        _records(code, name, module, extra)
        result.seconds = time.perf_counter() - t0
        if check:
            result.report = check_port(result, module, example_inputs, name, extra)
    if output and result.ok:     # a file that does not check is not written either
        write_atomic(output, code.encode())
        result.path = output
        result.weights = _write_weights(module, extra, weights or os.path.splitext(output)[0] + ".safetensors")
    return result


def port_spec(spec, output=None, inputs=None, dynamic=None, weights=None, check=False, trust_checkpoint=False):
    """port() for a spec string: `torchvision:NAME`, `timm:NAME`, `transformers:CLASS{json}`, `pkg.mod:factory`;
    nothing downloads (pretrained weights off, hubs offline)."""
    with offline():
        return _port_spec(spec, output, inputs, dynamic, weights, check, trust_checkpoint)


def _port_spec(spec, output, inputs, dynamic, weights, check, trust_checkpoint):
    torch.manual_seed(0)
    module, (src, fname, kwargs) = load_spec(spec, trust_checkpoint)
    if src == "transformers" and llm.is_causal_lm(module):   # a generation-ready decoder network (trtnet.llm)
        return llm.port_causal_lm(module, fname, kwargs, output, weights, check)
    specs = inputs or default_inputs(module, src)
    examples = example_tensors(specs, module)
    if dynamic is None:     # token ids: any batch and length
        dynamic = {k: (0, 1) for k, v in examples.items() if v.dim() == 2 and not v.dtype.is_floating_point}
    if not getattr(module, "seeded", False):       # modules that seed their own weights keep them
        with kept(module):                         # the statistics change in place; caches are put back
            _randomize(module, examples)
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    if src == "timm":
        imports, factory = ["import timm"], f"lambda: timm.create_model({fname!r}, {args})"
    elif src == "transformers":
        cls = type(module)
        cfg = cls.config_class.__name__
        imports = [f"import {cls.__module__}"]
        factory = f"lambda: {cls.__module__}.{fname}({cls.__module__}.{cfg}({args}))"
    elif src.endswith(".detection"):
        imports = [f"import {src}", "import trtnet.port.capture"]
        factory = f"lambda: trtnet.port.capture.detection_network({src}.{fname}({args}))"
    else:
        imports, factory = [f"import {src}"], f"lambda: {src}.{fname}({args})"
    name = os.path.splitext(os.path.basename(output))[0] if output else fname
    return port(module, examples, output, name, weights, dynamic, factory, imports, check, source=spec)


def _check_dynamic(examples, dynamic):
    for k, axes in dynamic.items():
        if k not in examples:
            raise PortError(f"dynamic axes for '{k}', which is not an input (inputs: {', '.join(examples)})")
        rank = examples[k].dim()
        bad = [a for a in axes if not 0 <= a < rank]
        if bad:
            raise PortError(f"dynamic axis {bad[0]} of input '{k}': it has {rank} axes (0 to {rank - 1})")


def _other_values(gm, examples, module, dynamic):
    """Node values at one more sample, twice each dynamic axis and other data, up to the first node fixed to the
    example's sizes: what differs is written from the inputs' sizes, what does not is a constant."""
    from .capture import _Recorder
    from .codegen import source_line
    gen = torch.Generator().manual_seed(7)
    high = min(getattr(getattr(module, "config", None), "vocab_size", 10), 10)
    other = {}
    for k, v in examples.items():
        shape = [_other_size(d, v.dtype.is_floating_point, module) if i in dynamic.get(k, ()) else d
                 for i, d in enumerate(v.shape)]
        shape[0] = v.shape[0] + 1
        other[k] = (torch.randn(shape, generator=gen, dtype=v.dtype) if v.dtype.is_floating_point else
                    torch.randint(0, high, shape, generator=gen, dtype=v.dtype))
    sizes = ", ".join(f"{k} {'x'.join(map(str, v.shape))}" for k, v in other.items())
    try:
        with torch.no_grad():
            expected = module(**other)
    except Exception as e:  # noqa: BLE001 (the module's own code)
        raise PortError(f"the module itself fails at other sizes ({sizes}), so they cannot be dynamic: "
                        f"{_line(e)}") from e
    rec = _Recorder(gm)
    frozen = "a size or value computed in Python at the example (int(), math, .item()) is frozen in the capture"
    try:
        with torch.no_grad():
            got = rec.run(*other.values())
    except Exception as e:  # noqa: BLE001 (the capture holds a size of the example's: no port at other sizes)
        raise PortError(f"{source_line(rec.current)}: {frozen}: at {sizes} it fails: {_line(e)}") from e
    for k, (a, b) in enumerate(zip(_flat(got), _flat(expected))):
        if a.shape != b.shape or not torch.allclose(a.double(), b.double(), 1e-4, 1e-4 * float(b.abs().max())):
            raise PortError(f"{frozen}: at {sizes} output {k} differs from the module's "
                            f"({'x'.join(map(str, a.shape))} against {'x'.join(map(str, b.shape))})")
    return rec.values


def _other_sizes_kept(gm, examples, dynamic, module, values, other):
    """`other`, with None for the nodes whose values change at two more sizes, so that they are not constants:
    the first dynamic axis besides the batch doubled (a ratio h / w, which doubling every axis keeps), and each
    such axis a step longer (h // ceil(h / 32), ceil(h / 64), (-h) % 32, which doubling keeps): the smallest step
    of 1, 2, 4 ... 32 the capture runs at, as networks that take multiples of 32 only run at +32. A size the
    capture does not run at changes nothing: the other values stand as they are."""
    axes = [(k, a) for k, ax in dynamic.items() for a in ax if a != 0]
    if len(axes) > 1:
        k, axis = axes[0]
        other = _changed(gm, {n: v.repeat_interleave(2, axis) if n == k else v for n, v in examples.items()},
                         values, other) or other
    for step in (1, 2, 4, 8, 16, 32) if axes else ():
        sized = _stepped(examples, axes, module, step)
        changed = None if sized is None else _changed(gm, sized, values, other)
        if changed is not None:
            return changed
    return other


def _changed(gm, inputs, values, other):
    """`other` with None for the nodes it shares with `values` that differ when the capture runs at `inputs`; None
    when it does not run there (sizes the module does not take)."""
    from .capture import _Recorder
    from .codegen import _same
    rec = _Recorder(gm)
    try:
        with torch.no_grad():
            rec.run(*inputs.values())
    except Exception:  # noqa: BLE001 (the module's own code at sizes it does not take)
        return None
    return {n: None if n in rec.values and _same(values.get(n), v) and not _same(values.get(n), rec.values[n])
            else v for n, v in other.items()}


def _stepped(examples, axes, module, step):
    """The examples with each of `axes` `step` longer (shorter where longer leaves its range), repeating their
    data; None where a size leaves its range both ways."""
    sized = dict(examples)
    for k, axis in axes:
        v = sized[k]
        size = v.shape[axis]
        lo, _, hi = _range(size, v.dtype.is_floating_point, getattr(module, "config", None))
        new = size + step if size + step <= hi else size - step
        if new < lo:
            return None
        sized[k] = v.index_select(axis, torch.arange(new) % size)
    return sized


def _other_size(size, floating, module):
    """Twice the example's size, or the end of its range nearest to that."""
    lo, _, hi = _range(size, floating, getattr(module, "config", None))
    return min(2 * size, hi) if hi > size else lo


def _line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def _flat(y):
    """The tensors of a module's output, in order (dicts and tuples flattened, None left out)."""
    if isinstance(y, torch.Tensor):
        return [y]
    if isinstance(y, dict) or hasattr(y, "keys"):
        y = [y[k] for k in y.keys()]
    return [t for v in (y if isinstance(y, (tuple, list)) else []) for t in _flat(v)]


def _randomize(module, examples):
    """Seeded values for trivial parameters, then BatchNorm variances raised to those measured on seeded inputs
    where the seeded ones are smaller: large activations are scaled down (softmax and exp stay well
    conditioned) while damped ones keep their seeded statistics (deep residual stacks stay stable)."""
    from trtnet.zoo import randomize_trivial
    randomize_trivial(module)
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms or not all(v.dtype.is_floating_point for v in examples.values()):
        return
    gen = torch.Generator().manual_seed(1)
    batch = {k: torch.randn((4, *v.shape[1:]), generator=gen) for k, v in examples.items()}
    saved = [(m, m.momentum, m.running_mean.clone(), m.running_var.clone()) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        with torch.no_grad():
            module(**batch)
    except Exception:  # noqa: BLE001 (a module that cannot run in training mode keeps the seeded statistics)
        for m, _, mean, var in saved:
            m.running_var.copy_(var)
    for m, _, mean, var in saved:
        m.running_mean.copy_(mean)
        m.running_var.copy_(torch.maximum(var, m.running_var))
    for m, momentum, _, _ in saved:
        m.momentum = momentum
        m.eval()


def _identifier(s):
    """A Python name for the model's function: the file's own name unless a keyword or a trtnet name the code
    imports (a `pad.py` defining `pad` would hide trtnet's pad)."""
    import keyword
    import trtnet
    s = re.sub(r"\W", "_", s)
    s = "m_" + s if s[0].isdigit() else s
    return s + "_net" if keyword.iskeyword(s) or s in trtnet.__all__ or s == "register" else s


def _input_specs(examples, dynamic, module):
    """[(per-sample shape, dtype, ranges, id range)] and the register call's shape (first input)."""
    out = []
    for name, t in examples.items():
        shape, ranges = list(t.shape[1:]), {}
        for axis in dynamic.get(name, ()):
            if axis == 0:
                continue
            dim = "HW"[axis - 2] if t.dim() == 4 and axis in (2, 3) else f"{name}_{axis}"
            size = int(t.shape[axis])
            shape[axis - 1] = dim
            ranges[dim] = _range(size, t.dtype.is_floating_point, getattr(module, "config", None))
        if ranges:      # a named dimension makes the whole shape explicit: the batch comes first
            shape = ["N", *shape]
        vocab = getattr(getattr(module, "config", None), "vocab_size", 10)
        out.append((tuple(shape), str(t.dtype).replace("torch.", ""), ranges, min(vocab, 10), name))
    return out, out[0][0]


def _range(size, floating, config):
    """A dynamic axis' (min, opt, max): token ids from one token to the model's positions (at most 128 unless the
    example is longer), other data from half to twice the example."""
    if floating:
        return max(1, size // 2), size, size * 2
    most = max(128, 2 * size)
    for key in ("max_position_embeddings", "n_positions", "max_source_positions"):
        if isinstance(getattr(config, key, None), int):
            most = min(most, max(getattr(config, key), size))
    return 1, size, most


def _output_names(y):
    if isinstance(y, dict) or hasattr(y, "keys"):
        return [k for k, v in y.items() if v is not None]
    if isinstance(y, (tuple, list)):
        return [f"output_{i}" for i in range(len(y))]
    return ["output"]


def _records(code, name, module, extra):
    """The generated file imports and records with the module's weights, or nothing is written: a port never
    leaves a file that does not load."""
    from trtnet.graph import GraphError
    from trtnet.weights import WeightMap
    try:
        _load_code(code, name).graph(WeightMap(state_arrays(module, extra), "port"))
    except Exception as e:  # noqa: BLE001  (any failure of the generated code is the port's)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GraphError(f"the ported code of '{name}' does not record, so nothing was written: "
                         f"{_generated_line(first, code, name)}") from e


def _generated_line(message, code, name):
    """`message` with the temporary file's place replaced by the generated line it names, quoted."""
    found = re.search(rf"\S*{re.escape(name)}\.py:(\d+): ", message)
    if not found:
        return message
    line = code.splitlines()[int(found.group(1)) - 1].strip()
    return f"{message[:found.start()]}generated line {found.group(1)} `{line}`: {message[found.end():]}"


def state_arrays(module, extra):
    arrays = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    arrays.update(extra)
    return arrays


def _write_weights(module, extra, path):
    from trtnet.weights import save_safetensors, save_wts
    arrays = {k: np.ascontiguousarray(v) for k, v in state_arrays(module, extra).items()}
    (save_wts if path.endswith(".wts") else save_safetensors)(arrays, path)
    return path


def check_port(result, module, examples, name, extra, batch=2):
    """The written model (or the code in memory) against `module` at batch `batch`, fp32 tolerance 1e-4."""
    from trtnet import zoo
    from trtnet.harness import run_module
    from trtnet.check.module import float64_outputs, rounding
    from trtnet.check.report import check_graph
    from trtnet.weights import WeightMap
    spec = zoo.get(result.path) if result.path else _load_code(result.code, name)
    w = WeightMap(state_arrays(module, extra), "port")
    graph = spec.graph(w)
    env = {"N": batch}
    inputs = zoo.random_inputs(graph, {**{k: v[1] for k, v in graph.ranges.items()}, **env},
                               np.random.default_rng(0))
    for n in graph.inputs:
        ex = examples.get(n.name)
        if ex is not None and not ex.dtype.is_floating_point:
            inputs[n.name] = inputs[n.name].astype(str(ex.dtype).replace("torch.", ""))
    expected = run_module(module, graph, inputs)
    report = check_graph(graph, inputs, expected, 1e-4)
    if report.added_up:   # outputs over tolerance, every layer within it: rounding PyTorch's fp32 makes too?
        over = [k for k, m in report.final.items() if m["rel"] > 1e-4]
        report.rounding = rounding(float64_outputs(module, graph, inputs), expected, report.values, 1e-4, over)
    return report


def _load_code(code, name):
    import tempfile
    from trtnet import zoo
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{name}.py")
        with open(path, "w") as f:
            f.write(code)
        return zoo.get(path)
