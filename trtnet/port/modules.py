"""The torch.nn modules kept whole (one trtnet call each), and how each is written.

Each writer takes (emitter, module, weight view expression, input expressions) and returns the call's code;
attributes are written only where they differ from torch's defaults.
"""
import operator

import torch.nn as nn


def _conv(c, m, w, x):
    if m.padding_mode != "zeros":
        x = c.call("pad", x, _pad_tuple(m), mode=m.padding_mode.replace("zeros", "constant"))
        padding = 0
    else:
        padding = m.padding
    return c.call("conv", x, w, **c.nondefault(stride=(_one(m.stride), 1), padding=(_one(padding), 0),
                                                dilation=(_one(m.dilation), 1), groups=(m.groups, 1)))


def _pad_tuple(m):
    return tuple(p for p in reversed(m.padding) for _ in range(2))


def _conv_t(c, m, w, x):
    return c.call("conv_transpose", x, w, **c.nondefault(
        stride=(_one(m.stride), 1), padding=(_one(m.padding), 0), output_padding=(_one(m.output_padding), 0),
        groups=(m.groups, 1), dilation=(_one(m.dilation), 1)))


def _one(v):
    """(2, 2) -> 2, as one would write it."""
    if isinstance(v, (tuple, list)) and len(set(v)) == 1:
        return v[0]
    return v


def _bn(c, m, w, x):
    if not m.track_running_stats or m.running_mean is None:
        c.unsupported("BatchNorm without running statistics")
    return c.call("bn", x, w, **c.nondefault(eps=(m.eps, 1e-5)))


def _ln(c, m, w, x):
    shape = tuple(m.normalized_shape)
    kw = c.nondefault(eps=(m.eps, 1e-5))
    if len(shape) > 1:
        kw["normalized_shape"] = shape
    return c.call("layer_norm", x, w if m.elementwise_affine else None, **kw)


def _rms(c, m, w, x):
    shape = tuple(m.normalized_shape)
    kw = c.nondefault(eps=(m.eps, None))
    if len(shape) > 1:
        kw["normalized_shape"] = shape
    return c.call("rms_norm", x, w if m.elementwise_affine else None, **kw)


def _gn(c, m, w, x):
    return c.call("group_norm", x, m.num_groups, w if m.affine else None, **c.nondefault(eps=(m.eps, 1e-5)))


def _pool(kind):
    def write(c, m, w, x):
        kw = c.nondefault(stride=(_one(m.stride), _one(m.kernel_size)), padding=(_one(m.padding), 0),
                          ceil_mode=(m.ceil_mode, False), dims=(_unbatched(c, m), None))
        if kind == "max":
            kw.update(c.nondefault(dilation=(_one(m.dilation), 1), return_indices=(m.return_indices, False)))
        else:
            kw.update(c.nondefault(count_include_pad=(m.count_include_pad, True),
                                   divisor_override=(getattr(m, "divisor_override", None), None)))
        return c.call(f"{kind}_pool", x, _one(m.kernel_size), **kw)
    return write


def _adaptive(kind):
    def write(c, m, w, x):
        if getattr(m, "return_indices", False):
            c.unsupported("AdaptiveMaxPool with return_indices")
        return c.call(f"adaptive_{kind}_pool", x, _one(m.output_size),
                      **c.nondefault(dims=(_unbatched(c, m), None)))
    return write


def _unbatched(c, m):
    """A pooling module's spatial rank where its input has no batch axis ((C, H, W) for a 2-D pool), else None:
    trtnet reads an int kernel's rank from the input's."""
    rank = int(type(m).__name__[-2])
    return rank if c.p.values[c.current.args[0]].dim() == rank + 1 else None


def _plain(name, **attrs):
    """A weight-free module written as the function of the same name, with its attributes."""
    def write(c, m, w, x):
        return c.call(name, x, **c.nondefault(**{k: (getattr(m, k), d) for k, d in attrs.items()}))
    return write


def _passthrough(c, m, w, x):
    return x


def _upsample(c, m, w, x):
    return c.call("interpolate", x, **c.nondefault(size=(m.size, None), scale_factor=(m.scale_factor, None),
                                                   mode=(m.mode, "nearest"), align_corners=(m.align_corners, None),
                                                   recompute_scale_factor=(m.recompute_scale_factor, None)))


def _mha(c, m, w, query, key=None, value=None, key_padding_mask=None, need_weights=True, attn_mask=None, **kw):
    """torch's argument names: callers pass key= and value= by name too."""
    used = any(u.target is not operator.getitem or u.args[1] != 0 for u in c.current.users)
    if need_weights and used or kw.get("is_causal"):
        c.unsupported("nn.MultiheadAttention whose attention weights are used, or is_causal")
    q, k, v = query, key if key is not None else query, value if value is not None else query
    extra = c.nondefault(key_padding_mask=(key_padding_mask, None), attn_mask=(attn_mask, None),
                         batch_first=(m.batch_first, True))
    return c.raw(f"({c.call('multi_head_attention', q, k, v, w, m.num_heads, **extra)}, None)")


def _recurrent(kind):
    """nn.LSTM / nn.GRU over a batch, as trtnet's loop of the same name: its (output, states) as torch's."""
    def write(c, m, w, x, hx=None):
        if getattr(m, "proj_size", 0) or c.p.values[c.current.args[0]].dim() != 3:
            c.unsupported(f"nn.{type(m).__name__} with proj_size or an unbatched input")
        if kind == "lstm" and hx is not None:     # (h0, c0) as a pair, or a variable holding one
            hx = hx if isinstance(hx, (tuple, list)) else [c.raw(f"{c.operand(hx)}[{k}]") for k in (0, 1)]
        states = dict(zip(("h0", "c0"), [hx] if kind == "gru" else hx or ()))
        return c.call(kind, x, w, m.hidden_size, **c.nondefault(
            num_layers=(m.num_layers, 1), bidirectional=(m.bidirectional, False), batch_first=(m.batch_first, False)),
            **{k: v for k, v in states.items() if v is not None})
    return write


def _cell(kind):
    """nn.LSTMCell / nn.GRUCell on a batch: trtnet's cell, states None for zeros."""
    def write(c, m, w, x, hx=None):
        if c.p.values[c.current.args[0]].dim() != 2:
            c.unsupported(f"nn.{type(m).__name__} on an unbatched input")
        return c.call(kind, x, hx, w)
    return write


MODULES = {
    nn.Conv1d: _conv, nn.Conv2d: _conv, nn.Conv3d: _conv,
    nn.ConvTranspose1d: _conv_t, nn.ConvTranspose2d: _conv_t, nn.ConvTranspose3d: _conv_t,
    nn.Linear: lambda c, m, w, x: c.call("fc", x, w),
    nn.BatchNorm1d: _bn, nn.BatchNorm2d: _bn, nn.BatchNorm3d: _bn,
    nn.LayerNorm: _ln, nn.GroupNorm: _gn, nn.RMSNorm: _rms,
    nn.Embedding: lambda c, m, w, x: c.call("embedding", x, w, **c.nondefault(padding_idx=(m.padding_idx, None))),
    nn.PReLU: lambda c, m, w, x: c.call("prelu", x, w),
    nn.ReLU: _plain("relu"), nn.ReLU6: _plain("relu6"), nn.SiLU: _plain("silu"), nn.Sigmoid: _plain("sigmoid"),
    nn.Tanh: _plain("tanh"), nn.Hardswish: _plain("hardswish"), nn.Hardsigmoid: _plain("hardsigmoid"),
    nn.Mish: _plain("mish"), nn.GELU: _plain("gelu", approximate="none"),
    nn.LeakyReLU: _plain("leaky_relu", negative_slope=0.01), nn.ELU: _plain("elu", alpha=1.0),
    nn.Hardtanh: _plain("hardtanh", min_val=-1.0, max_val=1.0), nn.Softplus: _plain("softplus", beta=1.0, threshold=20.0),
    nn.Softmax: _plain("softmax", dim=None), nn.LogSoftmax: _plain("log_softmax", dim=None),
    nn.Flatten: _plain("flatten", start_dim=None, end_dim=-1), nn.GLU: _plain("glu", dim=-1),
    nn.PixelShuffle: _plain("pixel_shuffle", upscale_factor=None),
    nn.Identity: _passthrough, nn.Dropout: _passthrough, nn.Dropout1d: _passthrough, nn.Dropout2d: _passthrough,
    nn.Dropout3d: _passthrough,
    nn.MaxPool1d: _pool("max"), nn.MaxPool2d: _pool("max"), nn.MaxPool3d: _pool("max"),
    nn.AvgPool1d: _pool("avg"), nn.AvgPool2d: _pool("avg"), nn.AvgPool3d: _pool("avg"),
    nn.AdaptiveAvgPool1d: _adaptive("avg"), nn.AdaptiveAvgPool2d: _adaptive("avg"), nn.AdaptiveAvgPool3d: _adaptive("avg"),
    nn.AdaptiveMaxPool1d: _adaptive("max"), nn.AdaptiveMaxPool2d: _adaptive("max"), nn.AdaptiveMaxPool3d: _adaptive("max"),
    nn.Upsample: _upsample, nn.MultiheadAttention: _mha,
    nn.LSTM: _recurrent("lstm"), nn.GRU: _recurrent("gru"),
    nn.LSTMCell: _cell("lstm_cell"), nn.GRUCell: _cell("gru_cell"),
}
