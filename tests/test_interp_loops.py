"""The CPU interpreter's loops (ILoop: trip limits, recurrences, iterators, loop outputs) against
numpy and torch.nn.LSTM / torch.nn.GRU."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from test_interp import Net, close, rand, t
from trtnet.check import UnsupportedLayerError

EW, LO, MO = t.ElementWiseOperation, t.LoopOutput, t.MatrixOperation


def scalar(n, value, dtype=np.int32):
    return n.const(np.array(value, dtype))


def ew(n, a, b, op):
    return n.net.add_elementwise(a, b, op).get_output(0)


def cumsum_loop(n, x, axis=0, reverse=False, out_kind=LO.CONCATENATE, out_axis=0, length=None):
    """Running sum of x's slices along `axis`: the sum after each iteration, and the final one."""
    loop = n.net.add_loop()
    steps = x.shape[axis]
    loop.add_trip_limit(scalar(n, steps), t.TripLimit.COUNT)
    item = loop.add_iterator(x, axis, reverse).get_output(0)
    rec = loop.add_recurrence(n.const(np.zeros(item.shape, np.float32)))
    total = ew(n, rec.get_output(0), item, EW.SUM)
    rec.set_input(1, total)
    seq = loop.add_loop_output(total, out_kind, out_axis)
    seq.set_input(1, scalar(n, steps if length is None else length))
    return seq.get_output(0), loop.add_loop_output(rec.get_output(0), LO.LAST_VALUE).get_output(0)


def test_cumulative_sum_loop():
    x = rand(5, 3)
    n = Net()
    seq, last = cumsum_loop(n, n.input(x.shape))
    got = n.run({"x": x}, seq, last)
    close(got[0], np.cumsum(x, 0))
    close(got[1], x.sum(0))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("kind", [LO.CONCATENATE, LO.REVERSE], ids=["CONCATENATE", "REVERSE"])
def test_iterator_axis_and_output_kinds(reverse, kind):
    """Iterating over axis 1 (forward or from the end), stacking each iteration's value at axis 2
    in iteration order (CONCATENATE) or reversed (REVERSE)."""
    x = rand(2, 4, 3)
    n = Net()
    seq, last = cumsum_loop(n, n.input(x.shape), axis=1, reverse=reverse, out_kind=kind, out_axis=2)
    got = n.run({"x": x}, seq, last)
    src = x[:, ::-1] if reverse else x
    sums = np.cumsum(src, 1)                      # [2, iteration, 3]
    if kind == LO.REVERSE:
        sums = sums[:, ::-1]
    close(got[0], sums.transpose(0, 2, 1))        # iterations stacked at axis 2
    close(got[1], x.sum(1))


def test_while_loop():
    """i = 0, acc = 1; while i < 3: acc = 2 * acc + i; i += 1 (condition checked before each iteration)."""
    n = Net()
    loop = n.net.add_loop()
    count = loop.add_recurrence(scalar(n, 0))
    acc = loop.add_recurrence(scalar(n, 1.0, np.float32))
    loop.add_trip_limit(ew(n, count.get_output(0), scalar(n, 3), EW.LESS), t.TripLimit.WHILE)
    as_float = n.net.add_cast(count.get_output(0), t.float32).get_output(0)
    new_acc = ew(n, ew(n, acc.get_output(0), scalar(n, 2.0, np.float32), EW.PROD), as_float, EW.SUM)
    acc.set_input(1, new_acc)
    count.set_input(1, ew(n, count.get_output(0), scalar(n, 1), EW.SUM))
    seq = loop.add_loop_output(new_acc, LO.CONCATENATE)
    seq.set_input(1, scalar(n, 3))
    outs = [loop.add_loop_output(r.get_output(0), LO.LAST_VALUE).get_output(0) for r in (count, acc)]
    got = n.run({}, *outs, seq.get_output(0))
    assert got[0] == 3 and got[0].dtype == np.int32
    np.testing.assert_array_equal(got[2], [2.0, 5.0, 12.0])
    assert got[1] == 12.0


def test_nested_loops():
    """An outer loop over rows whose body holds a loop summing the row: row sums and their total."""
    x = rand(3, 4)
    n = Net()
    outer = n.net.add_loop()
    outer.add_trip_limit(scalar(n, 3), t.TripLimit.COUNT)
    row = outer.add_iterator(n.input(x.shape)).get_output(0)
    inner = n.net.add_loop()
    inner.add_trip_limit(scalar(n, 4), t.TripLimit.COUNT)
    elem = inner.add_iterator(row).get_output(0)
    part = inner.add_recurrence(scalar(n, 0.0, np.float32))
    part.set_input(1, ew(n, part.get_output(0), elem, EW.SUM))
    row_sum = inner.add_loop_output(part.get_output(0), LO.LAST_VALUE).get_output(0)
    total = outer.add_recurrence(scalar(n, 0.0, np.float32))
    total.set_input(1, ew(n, total.get_output(0), row_sum, EW.SUM))
    sums = outer.add_loop_output(row_sum, LO.CONCATENATE)
    sums.set_input(1, scalar(n, 3))
    got = n.run({"x": x}, sums.get_output(0), outer.add_loop_output(total.get_output(0), LO.LAST_VALUE).get_output(0))
    close(got[0], x.sum(1))
    close(got[1], x.sum())


def test_loop_output_errors():
    x = rand(4, 2)
    n = Net()
    seq, _ = cumsum_loop(n, n.input(x.shape), length=6)
    with pytest.raises(UnsupportedLayerError, match="past the 4 iterations"):
        n.run({"x": x}, seq)
    n = Net()
    seq, _ = cumsum_loop(n, n.input(x.shape), length=3)
    with pytest.raises(ValueError, match="shorter than the 4 iterations"):
        n.run({"x": x}, seq)


def test_last_value_must_be_a_recurrence():
    """TensorRT's builder refuses LAST_VALUE of any other tensor; so does the interpreter."""
    x = rand(4, 2)
    n = Net()
    loop = n.net.add_loop()
    loop.add_trip_limit(scalar(n, 4), t.TripLimit.COUNT)
    item = loop.add_iterator(n.input(x.shape)).get_output(0)
    doubled = ew(n, item, item, EW.SUM)
    with pytest.raises(ValueError, match="not a recurrence"):
        n.run({"x": x}, loop.add_loop_output(doubled, LO.LAST_VALUE).get_output(0))


# --- recurrent networks written as loops --------------------------------------------------

def linear(n, x, w, b):
    """x [N, K] @ w.T + b, w [M, K] and b [M] as in torch."""
    y = n.net.add_matrix_multiply(x, MO.NONE, n.const(w), MO.TRANSPOSE).get_output(0)
    return ew(n, y, n.const(b.reshape(1, -1)), EW.SUM)


def gate(n, x, k, size, batch):
    return n.net.add_slice(x, (0, k * size), (batch, size), (1, 1)).get_output(0)


def act(n, x, kind):
    return n.net.add_activation(x, kind).get_output(0)


AT = t.ActivationType


def lstm_direction(n, x, p, hidden, batch, reverse):
    """One direction of torch.nn.LSTM (gates i, f, g, o) over x [T, N, I]; returns the hidden
    sequence [T, N, H] in time order and the final hidden and cell states."""
    w_ih, w_hh, b_ih, b_hh = p
    loop = n.net.add_loop()
    loop.add_trip_limit(scalar(n, x.shape[0]), t.TripLimit.COUNT)
    xt = loop.add_iterator(x, 0, reverse).get_output(0)
    h = loop.add_recurrence(n.const(np.zeros((batch, hidden), np.float32)))
    c = loop.add_recurrence(n.const(np.zeros((batch, hidden), np.float32)))
    gates = ew(n, linear(n, xt, w_ih, b_ih), linear(n, h.get_output(0), w_hh, b_hh), EW.SUM)
    i, f, g, o = (gate(n, gates, k, hidden, batch) for k in range(4))
    i, f, o, g = act(n, i, AT.SIGMOID), act(n, f, AT.SIGMOID), act(n, o, AT.SIGMOID), act(n, g, AT.TANH)
    c_next = ew(n, ew(n, f, c.get_output(0), EW.PROD), ew(n, i, g, EW.PROD), EW.SUM)
    h_next = ew(n, o, act(n, c_next, AT.TANH), EW.PROD)
    h.set_input(1, h_next)
    c.set_input(1, c_next)
    seq = loop.add_loop_output(h_next, LO.REVERSE if reverse else LO.CONCATENATE)
    seq.set_input(1, scalar(n, x.shape[0]))
    finals = [loop.add_loop_output(r.get_output(0), LO.LAST_VALUE).get_output(0) for r in (h, c)]
    return seq.get_output(0), *finals


def gru_direction(n, x, p, hidden, batch):
    """torch.nn.GRU: r, z = sigmoid(...), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
    h' = (1 - z) * n + z * h."""
    w_ih, w_hh, b_ih, b_hh = p
    loop = n.net.add_loop()
    loop.add_trip_limit(scalar(n, x.shape[0]), t.TripLimit.COUNT)
    xt = loop.add_iterator(x).get_output(0)
    h = loop.add_recurrence(n.const(np.zeros((batch, hidden), np.float32)))
    gi, gh = linear(n, xt, w_ih, b_ih), linear(n, h.get_output(0), w_hh, b_hh)
    r = act(n, ew(n, gate(n, gi, 0, hidden, batch), gate(n, gh, 0, hidden, batch), EW.SUM), AT.SIGMOID)
    z = act(n, ew(n, gate(n, gi, 1, hidden, batch), gate(n, gh, 1, hidden, batch), EW.SUM), AT.SIGMOID)
    cand = act(n, ew(n, gate(n, gi, 2, hidden, batch), ew(n, r, gate(n, gh, 2, hidden, batch), EW.PROD), EW.SUM),
               AT.TANH)
    one_minus_z = ew(n, n.const(np.ones((1, 1), np.float32)), z, EW.SUB)
    h_next = ew(n, ew(n, one_minus_z, cand, EW.PROD), ew(n, z, h.get_output(0), EW.PROD), EW.SUM)
    h.set_input(1, h_next)
    seq = loop.add_loop_output(h_next, LO.CONCATENATE)
    seq.set_input(1, scalar(n, x.shape[0]))
    return seq.get_output(0), loop.add_loop_output(h.get_output(0), LO.LAST_VALUE).get_output(0)


def params(module, suffix=""):
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return [getattr(module, f"{k}_l0{suffix}").detach().numpy() for k in names]


T_, N_, I_, H_ = 6, 2, 3, 4


def test_lstm_loop_against_torch():
    torch.manual_seed(0)
    lstm = nn.LSTM(I_, H_)
    x = rand(T_, N_, I_, lo=-2, hi=2)
    n = Net()
    seq, h, c = lstm_direction(n, n.input(x.shape), params(lstm), H_, N_, reverse=False)
    got = n.run({"x": x}, seq, h, c)
    with torch.no_grad():
        want, (hn, cn) = lstm(torch.from_numpy(x))
    close(got[0], want.numpy())
    close(got[1], hn[0].numpy())
    close(got[2], cn[0].numpy())


def test_bidirectional_lstm_with_reverse_iterator():
    """The backward direction iterates from the end (reverse iterator) and stacks with REVERSE, so
    both directions' sequences line up in time, as torch's bidirectional output does."""
    torch.manual_seed(1)
    lstm = nn.LSTM(I_, H_, bidirectional=True)
    x = rand(T_, N_, I_, seed=3, lo=-2, hi=2)
    n = Net()
    inp = n.input(x.shape)
    fwd, hf, _ = lstm_direction(n, inp, params(lstm), H_, N_, reverse=False)
    bwd, hb, _ = lstm_direction(n, inp, params(lstm, "_reverse"), H_, N_, reverse=True)
    both = n.net.add_concatenation([fwd, bwd])
    both.axis = 2
    got = n.run({"x": x}, both.get_output(0), hf, hb)
    with torch.no_grad():
        want, (hn, _) = lstm(torch.from_numpy(x))
    close(got[0], want.numpy())
    close(got[1], hn[0].numpy())
    close(got[2], hn[1].numpy())


def test_gru_loop_against_torch():
    torch.manual_seed(2)
    gru = nn.GRU(I_, H_)
    x = rand(T_, N_, I_, seed=4, lo=-2, hi=2)
    n = Net()
    seq, h = gru_direction(n, n.input(x.shape), params(gru), H_, N_)
    got = n.run({"x": x}, seq, h)
    with torch.no_grad():
        want, hn = gru(torch.from_numpy(x))
    close(got[0], want.numpy())
    close(got[1], hn[0].numpy())
