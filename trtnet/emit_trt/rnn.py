"""LSTM and GRU as TensorRT loops (TensorRT 10 has no RNN layer): the input projections of every time step
are computed before the loop, which iterates over them (backwards for the reverse direction), keeps h (and c)
as recurrences and returns the hidden sequence (CONCATENATE/REVERSE) and the final states (LAST_VALUE)."""
import numpy as np

from .core import emitter

GATES = {"lstm": 4, "gru": 3, "lstm_cell": 4, "gru_cell": 3}


class _Ops:
    """Helper layers named `prefix/what`."""

    def __init__(self, e, prefix):
        self.e, self.prefix = e, prefix

    def out(self, layer, what):
        return self.e.helper(layer, f"{self.prefix}/{what}")

    def linear(self, x, rank, weight, bias, what):
        """x @ weight.T (+ bias) with `weight` a constant broadcast over x's leading dims."""
        e, M = self.e, self.e.t.MatrixOperation
        w = e.constant(weight.reshape((1,) * (rank - 2) + weight.shape), f"{self.prefix}/{what}_weight")
        y = self.out(e.network.add_matrix_multiply(x, M.NONE, w, M.TRANSPOSE), f"{what}_matmul")
        if bias is None:
            return y
        return self.add(y, e.constant(bias.reshape((1,) * (rank - 1) + bias.shape), f"{self.prefix}/{what}_bias"),
                        what)

    def binary(self, a, b, op, what):
        return self.out(self.e.network.add_elementwise(a, b, op), what)

    def add(self, a, b, what):
        return self.binary(a, b, self.e.t.ElementWiseOperation.SUM, what)

    def mul(self, a, b, what):
        return self.binary(a, b, self.e.t.ElementWiseOperation.PROD, what)

    def sub(self, a, b, what):
        return self.binary(a, b, self.e.t.ElementWiseOperation.SUB, what)

    def act(self, x, kind, what):
        return self.out(self.e.network.add_activation(x, getattr(self.e.t.ActivationType, kind)), what)


def _gate_params(p, kind, suffix, hidden):
    """Per gate: (input weight, recurrent weight, input-side bias, recurrent bias kept inside the step).
    Both biases fold into the input side except GRU's new-gate recurrent bias, which r multiplies."""
    w_ih, w_hh = p[f"weight_ih{suffix}"], p[f"weight_hh{suffix}"]
    zeros = np.zeros(w_ih.shape[0], np.float32)
    b_ih, b_hh = p.get(f"bias_ih{suffix}", zeros), p.get(f"bias_hh{suffix}", zeros)
    out = []
    for k in range(GATES[kind]):
        s = slice(k * hidden, (k + 1) * hidden)
        inner = kind.startswith("gru") and k == 2
        out.append((w_ih[s], w_hh[s], b_ih[s] + (0 if inner else b_hh[s]), b_hh[s] if inner else None))
    return out


def _step(o, kind, xs, states, gates):
    """One time step from the gates' input projections `xs`: the next (h,) or (h, c)."""
    h = states[0]
    hs = [o.linear(h, 2, w_hh, b, f"gate{k}_hidden") for k, (_, w_hh, _, b) in enumerate(gates)]
    pre = [o.add(x, r, f"gate{k}") for k, (x, r) in enumerate(zip(xs, hs)) if not (kind.startswith("gru") and k == 2)]
    if kind.startswith("lstm"):
        i, f, o_ = (o.act(pre[k], "SIGMOID", name) for k, name in ((0, "input_gate"), (1, "forget_gate"),
                                                                    (3, "output_gate")))
        g = o.act(pre[2], "TANH", "cell_gate")
        c = o.add(o.mul(f, states[1], "keep"), o.mul(i, g, "write"), "c")
        return o.mul(o_, o.act(c, "TANH", "tanh_c"), "h"), c
    r, z = o.act(pre[0], "SIGMOID", "reset_gate"), o.act(pre[1], "SIGMOID", "update_gate")
    new = o.act(o.add(xs[2], o.mul(r, hs[2], "reset_hidden"), "new_pre"), "TANH", "new_gate")
    return (o.add(new, o.mul(z, o.sub(h, new, "h_minus_new"), "update"), "h"),)


def _zeros(e, batch, hidden, name):
    """(batch, hidden) zeros for run-time batch sizes: a LINSPACE fill with zero start and steps (float32,
    cast in fp16 networks)."""
    dims = e.shape_tensor((batch, hidden), name)
    layer = e.network.add_fill((0, 0), e.t.FillOperation.LINSPACE, e.t.float32)
    layer.set_input(0, dims)
    layer.set_input(1, e.constant(np.zeros((), np.float32), f"{name}/start", np.float32))
    layer.set_input(2, e.constant(np.zeros(2, np.float32), f"{name}/delta", np.float32))
    zeros = e.helper(layer, name)
    if e.dtype("float32") == e.t.float32:
        return zeros
    return e.helper(e.network.add_cast(zeros, e.dtype("float32")), f"{name}/half")   # fills make no halves


def _output_names(e, n):
    """Names of the op's outputs: its own, then its `item` nodes'."""
    items = sorted((m for m in e.graph.nodes if m.op == "item" and m.inputs[0] is n), key=lambda m: m.attrs["index"])
    return [n.name] + [m.name for m in items]


def _initial(e, n, states, index, batch, hidden, tag):
    """Initial states of one layer and direction: slices of the state inputs, or zeros."""
    if not states:
        zeros = _zeros(e, batch, hidden, f"{n.name}/{tag}/zeros")
        return [zeros] * (2 if n.op.startswith("lstm") else 1)
    pick = e.constant(np.array(index, np.int64), f"{n.name}/{tag}/state_index", np.int64)
    return [e.helper(e.network.add_gather(s, pick, 0), f"{n.name}/{tag}/state{k}") for k, s in enumerate(states)]


def _direction(e, n, x, suffix, init, count, axis, reverse):
    """One layer and direction as a loop: (hidden sequence, [final states])."""
    t, kind, hidden = e.t, n.op, n.attrs["hidden_size"]
    o = _Ops(e, f"{n.name}/l{suffix}")
    gates = _gate_params(n.params, kind, suffix, hidden)
    xp = [o.linear(x, 3, w_ih, b, f"gate{k}_input") for k, (w_ih, _, b, _) in enumerate(gates)]
    loop = e.network.add_loop()
    loop.name = o.prefix
    loop.add_trip_limit(count, t.TripLimit.COUNT).name = f"{o.prefix}/trip_limit"
    xs = [o.out(loop.add_iterator(p, axis, reverse), f"gate{k}_step") for k, p in enumerate(xp)]
    recs = [loop.add_recurrence(s) for s in init]
    states = [o.out(r, f"state{k}") for k, r in enumerate(recs)]
    nxt = _step(o, kind, xs, states, gates)
    for r, v in zip(recs, nxt):
        r.set_input(1, v)
    seq = loop.add_loop_output(nxt[0], t.LoopOutput.REVERSE if reverse else t.LoopOutput.CONCATENATE, axis)
    seq.set_input(1, count)
    finals = [o.out(loop.add_loop_output(s, t.LoopOutput.LAST_VALUE), f"final{k}") for k, s in enumerate(states)]
    return o.out(seq, "sequence"), finals


@emitter("lstm", "gru")
def _recurrent(e, n, x, *state_inputs):
    a, nx = n.attrs, n.inputs[0]
    dirs, hidden = 2 if a["bidirectional"] else 1, a["hidden_size"]
    axis = 1 if a["batch_first"] else 0
    batch = nx.shape[1 - axis]
    count = e.reshape(e.dim(nx.shape[axis], f"{n.name}/steps"), (), f"{n.name}/trip_count", final=False)
    names = _output_names(e, n)
    finals = [[] for _ in names[1:]]
    for layer in range(a["num_layers"]):
        outs = []
        for d in range(dirs):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            init = _initial(e, n, state_inputs, layer * dirs + d, batch, hidden, suffix[1:])
            seq, last = _direction(e, n, x, suffix, init, count, axis, reverse=bool(d))
            outs.append(seq)
            for k, v in enumerate(last):
                finals[k].append(e.reshape(v, (1, batch, hidden), f"{n.name}/{suffix[1:]}/final{k}_3d", final=False))
        x = outs[0] if dirs == 1 else e.helper(_concat(e, outs, 2), f"{n.name}/l{layer}/both")
    out = [e.named(e.network.add_identity(x), names[0])]
    for k, parts in enumerate(finals):
        out.append(e.named(_concat(e, parts, 0), names[k + 1]))
    return tuple(out)


def _concat(e, parts, axis):
    layer = e.network.add_concatenation(parts)
    layer.axis = axis
    return layer


@emitter("lstm_cell", "gru_cell")
def _cell(e, n, x, *states):
    hidden, batch = n.attrs["hidden_size"], n.inputs[0].shape[0]
    o = _Ops(e, n.name)
    gates = _gate_params(n.params, n.op, "", hidden)
    xs = [o.linear(x, 2, w_ih, b, f"gate{k}_input") for k, (w_ih, _, b, _) in enumerate(gates)]
    states = list(states) or _initial(e, n, (), 0, batch, hidden, "initial")
    nxt = _step(o, n.op, xs, states, gates)
    return tuple(e.named(e.network.add_identity(v), name) for v, name in zip(nxt, _output_names(e, n)))
