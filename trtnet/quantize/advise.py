"""Where a quantized graph loses its accuracy, and which layers to keep in higher precision to win it back.

Each quantized layer is measured alone (the graph with only that layer quantized: its output SQNR against fp32)
and the error is followed along the depth (each layer's output in the fully quantized graph against fp32), on
the reference executor. Quantization noises add up nearly independently, so the costliest layers are kept first
until the output meets the target; then each kept layer that the target does not need is given back. The ranges
are those of the full quantization (they do not depend on `--keep`), so the advised flag gives what was measured."""
import re
import shlex

import numpy as np

from .calibration import sqnr
from .rewrite import plan, requantize

TARGET_SQNR = {"int8": 40.0, "fp8": 32.0, "int8-weights": 40.0, "int4-weights": 25.0}   # dB, fp32-faithful
MIN_SQNR = {"int8": 20.0, "fp8": 15.0, "int8-weights": 20.0, "int4-weights": 10.0}      # a build's bound, dB
MIN_AGREEMENT = 0.75                                                                     # top-1 with fp32


def candidates(graph, precision, keep=()):
    """The names of the layers `plan` quantizes (a --keep pattern each), in graph order."""
    acts, weights, _ = plan(graph, precision, keep)
    return [n.name for n in graph.nodes if n.name in acts or n.name in weights]


def pattern(name):
    """A --keep pattern that matches `name` only (fnmatch's special characters bracketed)."""
    return re.sub(r"([\[\]*?])", r"[\1]", name)


def _outputs(graph, values):
    return np.concatenate([np.ravel(values[o.name]) for o in graph.outputs])


def _cost(graph, q, inputs, want, labels):
    from ..reference import run_reference  # loads torch
    got = run_reference(q, inputs)
    out = graph.outputs[0].name
    n = len(want[out])
    top1 = float((got[out].reshape(n, -1).argmax(1) == want[out].reshape(n, -1).argmax(1)).mean())
    c = {"sqnr": sqnr(_outputs(graph, got), _outputs(graph, want)), "top1": top1}
    if labels is not None:
        c["accuracy"] = float((got[out].argmax(1) == labels).mean())
    return c


class Advice:
    """What advise() found; `lines()`, `table()`, `summary()` and `ok` as a check report has them."""

    def __init__(self, precision, targets, alone, depth, keep, before, after, layers):
        self.precision, self.targets, self.alone, self.depth = precision, targets, alone, depth
        self.keep, self.before, self.after, self.layers = keep, before, after, layers

    @property
    def flag(self):
        return " ".join(f"--keep {shlex.quote(pattern(k))}" for k in self.keep)

    @property
    def ok(self):
        return met(self.after, *self.targets)

    def costliest(self, n=5):
        return sorted(self.alone, key=self.alone.get)[:n]

    def table(self, all=False):
        """Each quantized layer: its output SQNR quantized alone, and its own output's SQNR in the fully
        quantized graph (the error along the depth)."""
        rows = [f"{'layer':40s} {'alone dB':>9s} {'depth dB':>9s}  kept"]
        for name in self.layers:
            rows.append(f"{name[:40]:40s} {self.alone[name]:9.1f} {self.depth.get(name, float('nan')):9.1f}  "
                        f"{'yes' if name in self.keep else ''}")
        return "\n".join(rows if all or len(rows) <= 41 else rows[:1] + [rows[1 + self.layers.index(k)]
                                                                          for k in self.costliest(40)])

    def lines(self):
        t_sqnr, t_top1 = self.targets
        target = " and ".join(x for x in (f"output SQNR >= {t_sqnr:.1f} dB" if t_sqnr is not None else "",
                                          f"top-1 agreement >= {t_top1 * 100:.0f}%" if t_top1 is not None else "") if x)
        cost = ", ".join(f"{k} {self.alone[k]:.1f} dB" for k in self.costliest())
        out = [f"  advise   costliest layers (output SQNR with that layer alone quantized): {cost}",
               f"  advise   all {len(self.layers)} layers quantized: {_fmt(self.before)}",
               *self._depth(),
               f"  advise   target {target}: keep {len(self.keep)} of {len(self.layers)} layers: "
               f"{self.flag or '(none)'}",
               f"  advise   with it: {_fmt(self.after)} ({'meets' if self.ok else 'misses'} the target)"]
        return out

    def _depth(self):
        """A line on the error along the depth: where the layers' own output SQNR falls the most."""
        seen = [(n, self.depth[n]) for n in self.layers if n in self.depth and np.isfinite(self.depth[n])]
        if len(seen) < 2:
            return []
        drop = min(range(1, len(seen)), key=lambda i: seen[i][1] - seen[i - 1][1])
        return [f"  advise   along the depth (each layer's output, all quantized): {seen[0][1]:.1f} dB at "
                f"{seen[0][0]} to {seen[-1][1]:.1f} dB at {seen[-1][0]}; the largest fall at {seen[drop][0]} "
                f"({seen[drop][1] - seen[drop - 1][1]:+.1f} dB)"]

    def summary(self):
        return "\n".join(self.lines())


def _fmt(c):
    acc = f", accuracy {c['accuracy'] * 100:.2f}%" if "accuracy" in c else ""
    return f"output SQNR {c['sqnr']:.1f} dB, top-1 agreement {c['top1'] * 100:.1f}%{acc}"


def met(c, target_sqnr, target_agreement):
    return (target_sqnr is None or c["sqnr"] >= target_sqnr) and \
        (target_agreement is None or c["top1"] >= target_agreement)


def advise(graph, q, inputs, want=None, labels=None, target_sqnr=None, target_agreement=None):
    """Advice for the quantized `q` of the fp32 `graph` on `inputs` against `want` (default: the fp32 graph's
    reference executor): the output SQNR target defaults to TARGET_SQNR of the precision."""
    from ..reference import run_reference  # loads torch
    precision, ranges, base = q.quant["precision"], q.quant["ranges"], list(q.quant["keep"])
    if target_sqnr is None and target_agreement is None:
        target_sqnr = TARGET_SQNR[precision]
    layers = candidates(graph, precision, base)
    want = want if want is not None else run_reference(graph, inputs)
    alone = {}
    for name in layers:
        only = requantize(graph, precision, base + [pattern(k) for k in layers if k != name], ranges)
        alone[name] = _cost(graph, only, inputs, want, labels)["sqnr"]
    full = requantize(graph, precision, base, ranges)
    ref, got = run_reference(graph, inputs, outputs="all"), run_reference(full, inputs, outputs="all")
    named = {conv.name: bn for bn, conv in plan(graph, precision)[2].items()}   # a folded conv's output: its bn's
    depth = {n: sqnr(got[named.get(n, n)], ref[named.get(n, n)]) for n in layers
             if named.get(n, n) in got and named.get(n, n) in ref}
    before = _cost(graph, full, inputs, want, labels)
    keep, after = _choose(graph, precision, ranges, base, layers, alone, inputs, want, labels, before,
                          (target_sqnr, target_agreement))
    return Advice(precision, (target_sqnr, target_agreement), alone, depth, keep, before, after, layers)


def _choose(graph, precision, ranges, base, layers, alone, inputs, want, labels, before, targets):
    """(layers to keep, the cost with them kept): the costliest first, as many as the summed noise of the rest
    predicts, one more at a time until the target is met; then each kept layer not needed given back."""
    def cost(keep):
        return _cost(graph, requantize(graph, precision, base + [pattern(k) for k in keep], ranges), inputs, want,
                     labels)

    order = sorted(layers, key=alone.get)
    noise = {k: 10 ** (-alone[k] / 10) for k in layers}
    goal = 10 ** (-targets[0] / 10) if targets[0] is not None else 0.0
    n, rest = 0, sum(noise.values())
    while targets[0] is not None and n < len(order) and rest > goal:
        rest, n = rest - noise[order[n]], n + 1
    c = cost(order[:n]) if n else before
    while not met(c, *targets) and n < len(order):
        n += 1
        c = cost(order[:n])
    keep = order[:n]
    for k in reversed(list(keep)):   # the least costly kept layer first
        trial = cost([x for x in keep if x != k])
        if met(trial, *targets):
            keep, c = [x for x in keep if x != k], trial
    return keep, c
