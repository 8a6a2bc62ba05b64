"""Edge-case arguments of weight-free ops against torch where the op table's case files do not fit them (circular
padding, whose cases live with convolution), result dtypes (which the op table's value comparison does not see),
and the one-line errors for what TensorRT cannot express."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trtnet as tn
from op_cases import all_cases, make_inputs, record
from trtnet.check import run_network
from trtnet.engine import create_network
from trtnet.errors import TrtnetError
from trtnet.reference import run_reference


def _both(shape, fn, x, dtype="float32"):
    """fn on a one-input graph (named dims of `shape` dynamic): the reference's and the TensorRT network's outputs
    on x."""
    g = tn.Graph("edges")
    y = fn(g.input("x", shape, dtype, ranges={d: (1, 4, 16) for d in shape if isinstance(d, str)}, batch=False))
    g.output(y)
    _, network, keep = create_network(g)   # keep: the arrays TensorRT reads, alive while the network runs
    return run_reference(g, {"x": x})[y.name], run_network(network, {"x": x})[y.name]


@pytest.mark.parametrize("shape,pads", [((2, 3, 5), (-1, 2)), ((2, 3, 5), (2, -1)), ((2, 3, 5), (3, -2)),
                                        ((1, 2, 4, 5), (1, 2, -1, 3)), ((2, 4, 5), (-2, 1, 2, -1)),
                                        ((1, 2, 3, 4, 5), (-1, 1, 0, -2, 1, 1))])
def test_circular_padding_wraps_what_negative_pads_leave(rng, shape, pads):
    """torch crops by the negative pads first, then wraps around the cropped tensor."""
    x = rng.standard_normal(shape).astype(np.float32)
    want = F.pad(torch.from_numpy(x), pads, "circular").numpy()
    for got in _both(shape, lambda t: tn.pad(t, pads, "circular"), x):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("length", [3, 7])
def test_circular_padding_with_negative_pads_of_a_dynamic_length(rng, length):
    x = rng.standard_normal((2, 3, length)).astype(np.float32)
    want = F.pad(torch.from_numpy(x), (-1, 2), "circular").numpy()
    for got in _both(("N", 3, "L"), lambda t: tn.pad(t, (-1, 2), "circular"), x):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("what,fn,match", [
    ("integer matmul", lambda g: tn.matmul(g.input("a", (2, 3), "int32", batch=False),
                                           g.input("b", (3, 2), "int32", batch=False)), "floating-point matrices"),
    ("mean of integers", lambda g: tn.mean(g.input("a", (2, 3), "int32", batch=False), 1), "floating-point input"),
    ("top-0", lambda g: tn.topk(g.input("a", (2, 3), batch=False), 0)[0], r"k=0 must be in 1\.\.3"),
    ("round decimals of integers", lambda g: tn.round(g.input("a", (2, 3), "int32", batch=False), decimals=1),
     "decimals=1 needs a floating-point input"),
    ("div rounding mode", lambda g: tn.div(g.input("a", (2, 3), batch=False), 2, rounding_mode="round"),
     "rounding_mode must be None, 'trunc' or 'floor'"),
])
def test_what_torch_accepts_but_trtnet_cannot_is_one_clear_error(what, fn, match):
    with pytest.raises(tn.GraphError, match=match) as e:
        fn(tn.Graph("edges"))
    assert "\n" not in str(e.value), what


def test_an_input_returned_unchanged_as_output_is_a_clear_error():
    """x[:, -100:100] is x itself: TensorRT cannot mark a network input as an output."""
    g = tn.Graph("edges")
    x = g.input("x", (2, 3), batch=False)
    g.output(x[:, -100:100])
    with pytest.raises(TrtnetError, match="output 'x' is a network input unchanged.*tn.identity"):
        create_network(g)


DTYPES = [   # (op, inputs' dtypes, trtnet, torch): result dtypes as torch promotes them
    ("tril of bools", ("bool",), lambda b: tn.tril(b), torch.tril),
    ("triu of ints", ("int32",), lambda i: tn.triu(i, 1), lambda i: torch.triu(i, 1)),
    ("cat of int and float", ("int32", "float32"), lambda i, x: tn.cat([i, x], 1), lambda i, x: torch.cat([i, x], 1)),
    ("cat of bool and int", ("bool", "int64"), lambda b, i: tn.cat([b, i]), lambda b, i: torch.cat([b, i])),
    ("relu of ints", ("int32",), tn.relu, torch.relu),
    ("sigmoid of ints", ("int32",), tn.sigmoid, torch.sigmoid),
    ("tanh of bools", ("bool",), tn.tanh, torch.tanh),
    ("logsumexp of ints", ("int32",), lambda i: tn.logsumexp(i, 1), lambda i: torch.logsumexp(i, 1)),
    ("trunc division of ints", ("int32", "int32"), lambda a, b: tn.div(a, b, rounding_mode="trunc"),
     lambda a, b: torch.div(a, b, rounding_mode="trunc")),
    ("fmod of ints", ("int64", "int64"), lambda a, b: tn.fmod(a, b), torch.fmod),
    ("max of bools", ("bool",), lambda b: tn.max(b, 1).values, lambda b: torch.max(b, 1).values),
    ("sort of bools", ("bool",), lambda b: tn.sort(b).values, lambda b: torch.sort(b).values),
    ("softmax to float32", ("float16",), lambda h: tn.softmax(h, -1, dtype="float32"),
     lambda h: torch.softmax(h, -1, dtype=torch.float32)),
]


@pytest.mark.parametrize("what,dtypes,fn,torch_fn", DTYPES, ids=[d[0] for d in DTYPES])
def test_result_dtypes_follow_torch(rng, what, dtypes, fn, torch_fn):
    """The recorded node's dtype and the reference's output type are torch's (the op table compares values)."""
    xs = [(rng.integers(1, 4, (2, 3)) if d != "float16" else rng.standard_normal((2, 3))).astype(d) for d in dtypes]
    want = torch_fn(*(torch.from_numpy(x) for x in xs))
    g = tn.Graph("dtypes")
    y = fn(*(g.input(f"x{i}", x.shape, str(x.dtype), batch=False) for i, x in enumerate(xs)))
    g.output(y)
    got = run_reference(g, {f"x{i}": x for i, x in enumerate(xs)})[y.name]
    assert (y.dtype, str(got.dtype)) == (str(want.dtype).replace("torch.", ""),) * 2, what


def test_a_zero_dim_tensor_keeps_the_other_operands_type():
    """float16 * a 0-D float32 tensor is float16 and int32 + a 0-D int64 one int32 in torch; a 0-D float beside
    integers still makes a float."""
    g = tn.Graph("dtypes")
    h, i = g.input("h", (2, 3), "float16", batch=False), g.input("i", (3,), "int32", batch=False)
    got = [(h * tn.tensor(1.5, h)).dtype, (i + tn.tensor(3, i)).dtype, (i * tn.tensor(0.5, i)).dtype]
    h16, i32 = torch.ones(2, 3, dtype=torch.float16), torch.ones(3, dtype=torch.int32)
    want = [h16 * torch.tensor(1.5), i32 + torch.tensor(3), i32 * torch.tensor(0.5)]
    assert got == [str(w.dtype).replace("torch.", "") for w in want]


def test_every_op_table_case_has_torch_result_types():
    """The op table compares values; here each case's recorded dtypes and reference outputs must also be of the
    types torch returns (a bool tril, int64 sums of bools, float16 kept beside a 0-D float32)."""
    wrong = []
    for c in all_cases():
        g, outs = record(c)
        x = make_inputs(c, c.sizes[0])
        with torch.no_grad():
            want = c.torch_fn(*(torch.from_numpy(np.ascontiguousarray(x[k]).reshape(np.shape(x[k]))) for k in c.inputs))
        got = run_reference(g, x)
        for o, w in zip(outs, want if isinstance(want, (list, tuple)) else [want]):
            dtype = str(w.dtype).replace("torch.", "")
            if (o.dtype, str(got[o.name].dtype)) != (dtype, "float32" if dtype == "bfloat16" else dtype):
                wrong.append(f"{c.id} {o.name}: recorded {o.dtype}, reference {got[o.name].dtype}, torch {dtype}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("what,fn,match", [
    ("max pooling indices of a run-time size",
     lambda x: tn.max_pool(x.graph.input("d", (1, 2, "L"), ranges={"L": (2, 4, 16)}, batch=False), 2,
                           return_indices=True), r"return_indices needs static spatial sizes, got \(L,\)"),
    ("1-D divisor_override", lambda x: tn.avg_pool(x[:, :, 0], 2, divisor_override=3),
     "divisor_override=3 must be a positive int of 2-D or 3-D average pooling"),
    ("antialiased nearest", lambda x: tn.interpolate(x, size=(2, 3), antialias=True),
     "antialias=True applies to modes 'bilinear' and 'bicubic'"),
    ("recomputed scale of a size", lambda x: tn.interpolate(x, size=(2, 3), recompute_scale_factor=True),
     "recompute_scale_factor=True needs scale_factor="),
    ("2-D pooling of a 1-D input", lambda x: tn.max_pool(x[0, 0], (2, 2)),
     r"2-D pooling expects .* got shape \(5, 6\)"),
    ("ceil_mode windows that may start in the padding of a run-time size",
     lambda x: tn.max_pool(x.graph.input("d", (1, 2, "L"), ranges={"L": (1, 4, 16)}, batch=False), 2, 2, 1,
                           ceil_mode=True), r"ceil_mode on the run-time size 'L' with stride 2 > kernel extent 2"),
])
def test_conv_family_arguments_torch_refuses_are_one_clear_error(what, fn, match):
    """torch raises for these too (F.avg_pool1d has no divisor_override, antialias is for bilinear and bicubic), or
    the result would need sizes known when the network is built."""
    with pytest.raises(tn.GraphError, match=match) as e:
        fn(tn.Graph("edges").input("x", (2, 3, 5, 6), batch=False))
    assert "\n" not in str(e.value), what


@pytest.mark.parametrize("fn,torch_fn", [
    (lambda t: tn.max_pool(t, 3, 2, 1, dims=2), lambda t: F.max_pool2d(t, 3, 2, 1)),
    (lambda t: tn.avg_pool(t, 2, ceil_mode=True, dims=1), lambda t: F.avg_pool1d(t, 2, ceil_mode=True)),
    (lambda t: tn.adaptive_max_pool(t, 2, dims=1), lambda t: F.adaptive_max_pool1d(t, 2)),
], ids=["max_pool2d", "avg_pool1d", "adaptive_max_pool1d"])
def test_pooling_reads_a_rank_3_input_by_its_declared_spatial_dims(rng, fn, torch_fn):
    """(C, H, W) to F.max_pool2d is one unbatched image, (N, C, L) to F.avg_pool1d a batch: the same rank, told
    apart by the pooling's spatial dims as torch's function names them."""
    x = rng.standard_normal((3, 7, 5)).astype(np.float32)
    want = torch_fn(torch.from_numpy(x)).numpy()
    for got in _both((3, 7, 5), fn, x):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
