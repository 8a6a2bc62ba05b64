"""Cases of recurrent layers against torch.nn.LSTM / GRU / LSTMCell / GRUCell."""
import torch
import torch.nn as nn

import trtnet as tn
from op_cases import case

I, H = 3, 4
TN = ({"T": 5, "N": 2}, {"T": 8, "N": 3})


def _module(cls, *args, seed=0, **kw):
    torch.manual_seed(seed)
    m = cls(*args, **kw).eval()
    return m, {f"rnn.{k}": v.numpy().copy() for k, v in m.state_dict().items()}


def _run(m, hidden=False):
    """torch's output as a flat list: output, then each final state."""
    def fn(x, *states):
        out = m(x, (tuple(states) if len(states) == 2 else states[0]) if hidden else None)
        if isinstance(m, (nn.LSTMCell, nn.GRUCell)):
            return list(out) if isinstance(out, tuple) else out
        out, h = out
        return [out, *h] if isinstance(h, tuple) else [out, h]
    return fn


def _flat(out):
    return [out[0], *out[1]] if isinstance(out[1], tuple) else list(out)


LSTM2, LSTM2_W = _module(nn.LSTM, I, H, 2)
case("lstm", "two-layers-dynamic", {"x": (("T", "N", I), "float32")},
     lambda w, x: _flat(tn.lstm(x, w["rnn"], H, num_layers=2)), _run(LSTM2), TN, LSTM2_W)

LSTMB, LSTMB_W = _module(nn.LSTM, I, H, 2, bidirectional=True, batch_first=True, seed=1)
S = (2 * 2, "N", H)
case("lstm", "bidirectional-batch-first-states",
     {"x": (("N", "T", I), "float32"), "h0": (S, "float32"), "c0": (S, "float32")},
     lambda w, x, h0, c0: _flat(tn.lstm(x, w["rnn"], H, 2, bidirectional=True, batch_first=True, h0=h0, c0=c0)),
     _run(LSTMB, hidden=True), TN, LSTMB_W)

GRUB, GRUB_W = _module(nn.GRU, I, H, 1, bidirectional=True, seed=2)
case("gru", "bidirectional-dynamic", {"x": (("T", "N", I), "float32")},
     lambda w, x: _flat(tn.gru(x, w["rnn"], H, bidirectional=True)), _run(GRUB), TN, GRUB_W)

GRU2, GRU2_W = _module(nn.GRU, I, H, 2, batch_first=True, bias=False, seed=3)
case("gru", "two-layers-batch-first-h0-no-bias", {"x": (("N", "T", I), "float32"), "h0": ((2, "N", H), "float32")},
     lambda w, x, h0: _flat(tn.gru(x, w["rnn"], H, 2, batch_first=True, h0=h0)), _run(GRU2, hidden=True), TN, GRU2_W)

CELL, CELL_W = _module(nn.LSTMCell, I, H, seed=4)
case("lstm_cell", "states", {"x": (("N", I), "float32"), "h": (("N", H), "float32"), "c": (("N", H), "float32")},
     lambda w, x, h, c: list(tn.lstm_cell(x, (h, c), w["rnn"])), _run(CELL, hidden=True),
     ({"N": 2}, {"N": 5}), CELL_W)
case("lstm_cell", "zero-states", {"x": (("N", I), "float32")}, lambda w, x: list(tn.lstm_cell(x, None, w["rnn"])),
     _run(CELL), ({"N": 2}, {"N": 5}), CELL_W)

GCELL, GCELL_W = _module(nn.GRUCell, I, H, seed=5)
case("gru_cell", "state", {"x": (("N", I), "float32"), "h": (("N", H), "float32")},
     lambda w, x, h: tn.gru_cell(x, h, w["rnn"]), _run(GCELL, hidden=True), ({"N": 2}, {"N": 5}), GCELL_W)
case("gru_cell", "zero-state", {"x": (("N", I), "float32")}, lambda w, x: tn.gru_cell(x, None, w["rnn"]),
     _run(GCELL), ({"N": 2}, {"N": 5}), GCELL_W)
