"""TensorRT's decoder layers together, as one generation step runs them: rotary embedding by position ids,
in-place KV-cache writes, and causal attention over the filled part of the cache with a padding mask. One
network, recorded once, checked at two lengths against a step written out in PyTorch, and built by TensorRT.
Also where TensorRT's ONNX parser departs from ONNX's decoder attention, with the interpreter as evidence."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trtnet as tn
from trtnet import backend
from trtnet.check import run_network
from trtnet.engine import build_engine, create_network
from trtnet.reference import run_reference

SMAX, HQ, HKV, D = 16, 4, 2, 8


def _step_graph(window=None):
    g = tn.Graph("decoder_step")
    r = {"S": (1, 4, 8), "T": (1, 8, SMAX)}
    q = g.input("q", ("N", HQ, "S", D), ranges=r, batch=False)
    k = g.input("k", ("N", HKV, "S", D), batch=False)
    v = g.input("v", ("N", HKV, "S", D), batch=False)
    caches = [g.input(n, ("N", HKV, SMAX, D), batch=False) for n in ("k_cache", "v_cache")]
    past = g.input("past", ("N",), "int32", batch=False)
    pos = g.input("position_ids", ("N", "S"), "int32", batch=False)
    keep = g.input("attention_mask", ("N", "T"), "bool", ranges=r, batch=False)   # T = past + S: filled rows
    cos, sin = (g.input(n, (SMAX, D // 2), batch=False) for n in ("cos", "sin"))
    q, k = (tn.rotary_embedding(x, cos, sin, position_ids=pos) for x in (q, k))
    kc, vc = (tn.kv_cache_update(c, x, past, name=f"{c.name}_out") for c, x in zip(caches, (k, v)))
    t = keep.shape[1]
    mask = tn.reshape(keep, (keep.shape[0], 1, 1, t))
    out = tn.causal_attention(q, kc[:, :, :t], vc[:, :, :t], window=window, attn_mask=mask)
    for o in (out, kc, vc):
        g.output(o)
    return g, (out, kc, vc)


def _inputs(n, s, past, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    angles = np.arange(SMAX)[:, None] * 10000.0 ** (-np.arange(D // 2) / (D // 2))
    keep = np.ones((n, past + s), bool)
    keep[0, :1] = past == 0   # the first sequence left-padded by one (in a prompt its first query would see nothing)
    return {"q": f(n, HQ, s, D), "k": f(n, HKV, s, D), "v": f(n, HKV, s, D), "k_cache": f(n, HKV, SMAX, D),
            "v_cache": f(n, HKV, SMAX, D), "past": np.full(n, past, np.int32),
            "position_ids": np.tile(np.arange(past, past + s, dtype=np.int32), (n, 1)), "attention_mask": keep,
            "cos": np.cos(angles).astype(np.float32), "sin": np.sin(angles).astype(np.float32)}


def _torch_step(x, window=None):
    """The step as transformers' Llama computes it, with a static cache."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
    x = {k: torch.from_numpy(v) for k, v in x.items()}
    pos = x["position_ids"].long()
    cos, sin = (torch.cat((c[pos], c[pos]), -1) for c in (x["cos"], x["sin"]))
    q, k = apply_rotary_pos_emb(x["q"], x["k"], cos, sin)
    past, s = int(x["past"][0]), q.shape[2]
    kc, vc = x["k_cache"].clone(), x["v_cache"].clone()
    kc[:, :, past:past + s], vc[:, :, past:past + s] = k, x["v"]
    t = past + s
    i, j = torch.arange(past, t).reshape(-1, 1), torch.arange(t)
    allowed = (j <= i) & (i - j < (window or t)) & x["attention_mask"][:, None, None, :]
    out = F.scaled_dot_product_attention(q, kc[:, :, :t], vc[:, :, :t], attn_mask=allowed, enable_gqa=True)
    return [out.numpy(), kc.numpy(), vc.numpy()]


@pytest.mark.parametrize("window", [None, 3])
def test_decoder_step_prefill_and_decode(window):
    g, outs = _step_graph(window)
    _, network, keep = create_network(g)
    for n, s, past in ((2, 5, 0), (3, 1, 9)):   # a prompt, then one token after nine
        x = _inputs(n, s, past)
        want = _torch_step(x, window)
        for what, got in (("reference", run_reference(g, x)), ("TensorRT network", run_network(network, x))):
            for o, w in zip(outs, want):
                np.testing.assert_allclose(got[o.name], w, rtol=1e-5, atol=1e-5, err_msg=f"{what} {o.name} {n, s}")
    del keep
    plan, info = build_engine(g, progress=False)
    assert info.size == len(plan) > 0
    if window is None:   # fp16 with the in-place caches kept in fp32
        plan, info = build_engine(g, progress=False, half="fp16", keep_fp32=["k_cache_out", "v_cache_out"])
        assert info.size == len(plan) > 0


def test_kv_cache_in_fp16_build_is_kept_in_fp32_or_refused():
    g, _ = _step_graph()
    with pytest.raises(tn.GraphError, match=r"keep the layer in fp32 \(keep_fp32=\['k_cache_out'\]"):
        create_network(g, half="fp16")


def _error(build):
    g = tn.Graph("bad")
    with pytest.raises(tn.GraphError) as e:
        build(g)
    return str(e.value)


def test_decoder_op_errors():
    cache = lambda g: g.input("cache", ("N", 2, 8, 4), batch=False)
    upd = lambda g: g.input("u", ("N", 2, "S", 4), batch=False)
    idx = lambda g, t="int32": g.input("w", ("N",), t, batch=False)
    assert "must be a network input" in _error(lambda g: tn.kv_cache_update(tn.relu(cache(g)), upd(g), idx(g)))
    assert "write_indices must be an int32" in _error(lambda g: tn.kv_cache_update(cache(g), upd(g), idx(g, "int64")))
    msg = _error(lambda g: tn.kv_cache_update(g.input("c", ("N", 2, "M", 4), batch=False), upd(g), idx(g)))
    assert "the cache's length (dimension 2) must be known when recording" in msg, msg
    x = lambda g, name="x", h=4: g.input(name, ("N", h, "S", 8), batch=False)
    msg = _error(lambda g: tn.rotary_embedding(x(g), g.input("c", ("N", "S", 8)), g.input("s", ("N", "S", 8))))
    assert "cos and sin must be float32 tensors of shape (N, S, 4)" in msg, msg
    msg = _error(lambda g: tn.rotary_embedding(x(g), x(g, "c"), x(g, "s"), rotary_dim=3))
    assert "rotary_dim must be even and in 1..8, got 3" in msg, msg
    msg = _error(lambda g: tn.kv_cache_update(cache(g), upd(g), 3))
    assert "write_indices must be an int32 tensor of shape (N,) (TensorRT builds no other type), got 3" in msg, msg
    assert "3 query heads" in _error(lambda g: tn.causal_attention(x(g, "q", 3), x(g), x(g, "v")))
    assert "window must be a positive int" in _error(lambda g: tn.causal_attention(x(g), x(g, "k"), x(g, "v"),
                                                                                   window=0))


def test_kv_cache_result_must_be_an_output():
    g = tn.Graph("cache_not_output")
    c, u = g.input("cache", ("N", 2, 8, 4), batch=False), g.input("u", ("N", 2, "S", 4), batch=False)
    y = tn.kv_cache_update(c, u, g.input("w", ("N",), "int32", batch=False))
    g.output(tn.relu(y))
    with pytest.raises(tn.GraphError, match="must be a network output"):
        create_network(g)


def _onnx_attention(attrs, shapes, extra=()):
    from onnx import TensorProto, helper
    names = ["Q", "K", "V", *(["", "", ""] + [n for n, _ in extra] if extra else [])]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip("QKV", shapes)]
    io += [helper.make_tensor_value_info(n, TensorProto.INT64, s) for n, s in extra]
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Attention", names, ["Y"], **attrs)], "attention", io, [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)])


@pytest.mark.parametrize("attrs,hq,sq,nonpad", [
    ({"is_causal": 1}, 4, 1, [8, 5]),                            # GQA decode over a static cache, valid lengths
    ({"is_causal": 1}, 2, 3, [8, 6]),                            # continued prefill
    ({"is_causal": 1, "left_window_size": 2}, 2, 8, None),       # sliding window
    ({"left_window_size": 1, "right_window_size": 2}, 2, 8, None)], ids=["decode", "prefill", "window", "band"])
def test_onnx_parser_drops_cache_lengths_and_windows(attrs, hq, sq, nonpad):
    """TensorRT-RTX 1.7's OnnxParser builds opset-24 Attention as top-left causal (or plain) attention of all
    keys: it drops nonpad_kv_seqlen and the window sizes. The interpreter computes the parsed network exactly;
    the differences from ONNX's reference are the parser's."""
    from onnx.reference import ReferenceEvaluator
    trt = backend.trt()
    rng = np.random.default_rng(0)
    shapes = [(2, hq, sq, 8), (2, 2, 8, 8), (2, 2, 8, 8)]
    x = dict(zip("QKV", (rng.random(s, np.float32) for s in shapes)))
    extra = [("nonpad", [2])] if nonpad else []
    if nonpad:
        x["nonpad"] = np.array(nonpad, np.int64)
    model = _onnx_attention(attrs, shapes, extra)
    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(0)
    assert trt.OnnxParser(network, logger).parse(model.SerializeToString())
    got = run_network(network, x)["Y"]
    q, k, v = (torch.from_numpy(x[n]) for n in "QKV")
    parsed = F.scaled_dot_product_attention(q, k, v, is_causal=bool(attrs.get("is_causal")), enable_gqa=True)
    np.testing.assert_allclose(got, parsed.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(got - ReferenceEvaluator(model).run(None, x)[0]).max() > 0.05


@pytest.mark.parametrize("interleaved,rotary_dim,positions", [(0, 0, True), (1, 0, True), (0, 4, False),
                                                              (1, 4, True)])
def test_onnx_rotary_embedding_through_the_parser(interleaved, rotary_dim, positions):
    """ONNX's RotaryEmbedding, parsed by TensorRT into its rotary layer and run by the interpreter, against ONNX's
    reference implementation."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    t = backend.trt()
    rng = np.random.default_rng(0)
    half = (rotary_dim or D) // 2
    x = {"X": rng.standard_normal((2, 3, 5, D), np.float32)}
    x["cos"], x["sin"] = (rng.standard_normal((SMAX, half) if positions else (2, 5, half), np.float32) for _ in "cs")
    if positions:
        x["pos"] = rng.integers(0, SMAX, (2, 5)).astype(np.int64)
    io = [helper.make_tensor_value_info(n, TensorProto.INT64 if n == "pos" else TensorProto.FLOAT, a.shape)
          for n, a in x.items()]
    node = helper.make_node("RotaryEmbedding", list(x), ["Y"], interleaved=interleaved, rotary_embedding_dim=rotary_dim)
    graph = helper.make_graph([node], "rope", io, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    logger = t.Logger(t.Logger.ERROR)
    network = t.Builder(logger).create_network(0)
    assert t.OnnxParser(network, logger).parse(model.SerializeToString())
    assert t.LayerType.ROTARY_EMBEDDING in {network.get_layer(i).type for i in range(network.num_layers)}
    want = ReferenceEvaluator(model).run(None, x)[0]
    np.testing.assert_allclose(run_network(network, x)["Y"], want, rtol=1e-5, atol=1e-6)
