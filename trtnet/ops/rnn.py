"""Recurrent layers from nn.LSTM / nn.GRU / nn.LSTMCell / nn.GRUCell state_dicts (run as TensorRT loops)."""
from ..shape import same
from .core import Layer, fmt, op, static_int

GATES = {"lstm": 4, "gru": 3}


RNN = dict(hidden_size=int, num_layers=int, bidirectional=bool, batch_first=bool, outputs=int)


@op("lstm", **RNN)
def lstm(x, w, hidden_size, num_layers=1, bidirectional=False, batch_first=False, h0=None, c0=None, name=None):
    """nn.LSTM over x (T, N, I), or (N, T, I) with batch_first; h0/c0 (layers * directions, N, hidden_size)
    default to zeros. Returns (output, (h_n, c_n))."""
    out, h, c = _recurrent("lstm", x, w, hidden_size, num_layers, bidirectional, batch_first, [h0, c0], name)
    return out, (h, c)


@op("gru", **RNN)
def gru(x, w, hidden_size, num_layers=1, bidirectional=False, batch_first=False, h0=None, name=None):
    """nn.GRU over x (T, N, I), or (N, T, I) with batch_first; h0 defaults to zeros. Returns (output, h_n)."""
    out, h = _recurrent("gru", x, w, hidden_size, num_layers, bidirectional, batch_first, [h0], name)
    return out, h


def _recurrent(kind, x, w, hidden, layers, bidirectional, batch_first, states, name):
    L = Layer(kind, x, name or w.prefix)
    L.rank(x, 3)
    L.float_input(x)
    if "weight_hr_l0" in w:
        L.fail("proj_size (weight_hr_l0) is not supported")
    dirs = 2 if bidirectional else 1
    size = static_int(L, x.shape[-1], "the input size")
    params = {}
    for layer in range(layers):
        for s in ("", "_reverse")[:dirs]:
            params.update(_weights(L, w, kind, hidden, size if layer == 0 else dirs * hidden, f"_l{layer}{s}"))
    n = x.shape[0 if batch_first else 1]
    given = [s is not None for s in states]
    if any(given) and not all(given):
        L.fail("give every initial state (h0 and c0) or none")
    inputs = [x] + ([_state(L, s, (layers * dirs, n, hidden), x.dtype) for s in states] if all(given) else [])
    seq = (*x.shape[:2], dirs * hidden)
    attrs = dict(hidden_size=int(hidden), num_layers=int(layers), bidirectional=bool(bidirectional),
                 batch_first=bool(batch_first))
    outs = [(seq, x.dtype)] + [((layers * dirs, n, hidden), x.dtype)] * len(states)
    return L.emit_multi(inputs, outs, attrs, params)


def _weights(L, w, kind, hidden, size, suffix):
    g = GATES[kind] * hidden
    out = {f"weight_ih{suffix}": L.param(w, f"weight_ih{suffix}", (g, size)),
           f"weight_hh{suffix}": L.param(w, f"weight_hh{suffix}", (g, hidden))}
    for k in (f"bias_ih{suffix}", f"bias_hh{suffix}"):
        b = L.param(w, k, (g,), required=False)
        if b is not None:
            out[k] = b
    return out


def _state(L, s, shape, dtype):
    if len(s.shape) != len(shape) or any(same(a, b) is False for a, b in zip(s.shape, shape)):
        L.fail(f"initial state '{s.name}' has shape {fmt(s.shape)}, expected {fmt(shape)}")
    if s.dtype != dtype:
        L.fail(f"initial state '{s.name}' has dtype {s.dtype}, the input {dtype}")
    return s


@op("lstm_cell", hidden_size=int, outputs=int)
def lstm_cell(x, hc, w, name=None):
    """nn.LSTMCell on x (N, I) with hc = (h, c), each (N, hidden), or None for zeros. Returns (h', c')."""
    h, c = _cell("lstm_cell", x, [None, None] if hc is None else list(hc), w, name)
    return h, c


@op("gru_cell", hidden_size=int, outputs=int)
def gru_cell(x, h, w, name=None):
    """nn.GRUCell on x (N, I) with h (N, hidden) or None for zeros. Returns h'."""
    return _cell("gru_cell", x, [h], w, name)[0]


def _cell(kind, x, states, w, name):
    L = Layer(kind, x, name or w.prefix)
    L.rank(x, 2)
    L.float_input(x)
    raw = w.get("weight_hh")
    if raw is None or raw.ndim != 2:
        L.fail(f"'{w.full('weight_hh')}' has no (gates * hidden, hidden) shape to take the hidden size from")
    hidden = raw.shape[1]
    params = _weights(L, w, kind[:-5], hidden, static_int(L, x.shape[1], "the input size"), "")
    given = [s is not None for s in states]
    if any(given) and not all(given):
        L.fail("give every state (h and c) or none")
    shape = (x.shape[0], hidden)
    inputs = [x] + ([_state(L, s, shape, x.dtype) for s in states] if all(given) else [])
    return L.emit_multi(inputs, [(shape, x.dtype)] * len(states), dict(hidden_size=int(hidden)), params)
