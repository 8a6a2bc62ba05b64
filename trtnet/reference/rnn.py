"""Recurrent layers computed by torch.nn modules loaded with the recorded weights."""
import torch
import torch.nn as nn

from .core import ref, t


def _load(module, params):
    state = {k: t(v) for k, v in params.items()}
    for k, v in module.state_dict().items():   # nn modules always have biases; absent ones are zeros
        state.setdefault(k, torch.zeros_like(v))
    module.load_state_dict(state)
    return module.eval()


@ref("lstm", "gru")
def _recurrent(n, x, *states):
    a = n.attrs
    cls = nn.LSTM if n.op == "lstm" else nn.GRU
    m = _load(cls(x.shape[-1], a["hidden_size"], a["num_layers"], bidirectional=a["bidirectional"],
                  batch_first=a["batch_first"]), n.params)
    hx = None if not states else (tuple(states) if n.op == "lstm" else states[0])
    out, h = m(x, hx)
    return (out, *h) if n.op == "lstm" else (out, h)


@ref("lstm_cell", "gru_cell")
def _cell(n, x, *states):
    cls = nn.LSTMCell if n.op == "lstm_cell" else nn.GRUCell
    m = _load(cls(x.shape[-1], n.attrs["hidden_size"]), n.params)
    hx = None if not states else (tuple(states) if n.op == "lstm_cell" else states[0])
    out = m(x, hx)
    return tuple(out) if n.op == "lstm_cell" else out
