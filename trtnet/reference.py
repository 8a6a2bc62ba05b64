"""Runs a recorded graph with PyTorch (torch.nn.functional), one function per op.

It is the graph's meaning in PyTorch terms: comparing it with the original nn.Module checks the
recording (layer order, weights, attributes); the TensorRT side is checked by `trtnet.check`.
"""
import numpy as np
import torch
import torch.nn.functional as F

REF = {}


def ref(*ops):
    def register(fn):
        for op in ops:
            REF[op] = fn
        return fn
    return register


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a).reshape(np.shape(a)))  # keeps 0-d scalars 0-d


@ref("conv")
def _conv(n, x):
    a = n.attrs
    b = n.params.get("bias")
    return F.conv2d(x, _t(n.params["weight"]), None if b is None else _t(b), a["stride"], a["padding"],
                    a["dilation"], a["groups"])


@ref("max_pool")
def _max_pool(n, x):
    a = n.attrs
    return F.max_pool2d(x, a["kernel"], a["stride"], a["padding"], ceil_mode=a["ceil_mode"])


@ref("avg_pool")
def _avg_pool(n, x):
    a = n.attrs
    return F.avg_pool2d(x, a["kernel"], a["stride"], a["padding"], ceil_mode=a["ceil_mode"],
                        count_include_pad=a["count_include_pad"])


@ref("adaptive_avg_pool")
def _adaptive(n, x):
    return F.adaptive_avg_pool2d(x, n.attrs["size"])


_ACT = {
    "relu": lambda x, a, b: F.relu(x),
    "sigmoid": lambda x, a, b: torch.sigmoid(x),
    "tanh": lambda x, a, b: torch.tanh(x),
    "leaky_relu": lambda x, a, b: F.leaky_relu(x, a),
    "silu": lambda x, a, b: F.silu(x),
    "gelu": lambda x, a, b: F.gelu(x),
    "gelu_tanh": lambda x, a, b: F.gelu(x, approximate="tanh"),
    "hardswish": lambda x, a, b: F.hardswish(x),
    "hardsigmoid": lambda x, a, b: F.hardsigmoid(x),
    "clip": lambda x, a, b: torch.clamp(x, a, b),
}


def _activation(n, x):
    return _ACT[n.attrs["kind"]](x, n.attrs["alpha"], n.attrs["beta"])


for _kind in _ACT:
    REF[_kind] = _activation


@ref("fc")
def _fc(n, x):
    b = n.params.get("bias")
    return F.linear(x, _t(n.params["weight"]), None if b is None else _t(b))


@ref("softmax")
def _softmax(n, x):
    return F.softmax(x, dim=n.attrs["axis"])


@ref("bn")
def _bn(n, x):
    p = {k: _t(v) for k, v in n.params.items()}
    return F.batch_norm(x, p["running_mean"], p["running_var"], p["weight"], p["bias"], False, 0.0, n.attrs["eps"])


@ref("add")
def _add(n, a, b):
    return a + b


@ref("sub")
def _sub(n, a, b):
    return a - b


@ref("mul")
def _mul(n, a, b):
    return a * b


@ref("const")
def _const(n):
    return _t(n.params["value"])


@ref("concat")
def _concat(n, *xs):
    return torch.cat(xs, dim=n.attrs["axis"])


@ref("flatten")
def _flatten(n, x):
    return torch.flatten(x, n.attrs["start"])


@ref("reshape")
def _reshape(n, x):
    return x.reshape(x.shape[0], *n.attrs["shape"])


@ref("upsample")
def _upsample(n, x):
    a = n.attrs
    kw = dict(scale_factor=a["scales"]) if a["scales"] else dict(size=a["size"])
    return F.interpolate(x, mode=a["mode"], align_corners=a["align_corners"] if a["mode"] == "bilinear" else None, **kw)


@ref("permute")
def _permute(n, x):
    return x.permute(*n.attrs["dims"])


@ref("slice", "select")
def _index(n, x):
    return torch.index_select(x, n.attrs["axis"], _t(n.attrs["index"]).long().reshape(-1)).reshape(
        (x.shape[0], *n.shape[1:]))


@ref("matmul")
def _matmul(n, a, b):
    return torch.matmul(a, b.transpose(-1, -2) if n.attrs["transpose_b"] else b)


@ref("layer_norm")
def _layer_norm(n, x):
    axis = n.attrs["axis"]
    y = F.layer_norm(x.movedim(axis, -1), (x.shape[axis],), _t(n.params["weight"]), _t(n.params["bias"]), n.attrs["eps"])
    return y.movedim(-1, axis)


@ref("expand_batch")
def _expand(n, c, like):
    return c.expand(like.shape[0], *c.shape[1:])


@ref("identity")
def _identity(n, x):
    return x


def run_reference(graph, inputs, outputs="marked"):
    """Evaluate `graph` on `inputs` ({input name: array}); returns numpy arrays by node name."""
    vals = {}
    with torch.no_grad():
        for n in graph.nodes:
            if n.op == "input":
                if n.name not in inputs:
                    raise KeyError(f"no value given for graph input '{n.name}'")
                vals[n.name] = torch.as_tensor(np.asarray(inputs[n.name], dtype=np.float32))
            else:
                vals[n.name] = REF[n.op](n, *(vals[i.name] for i in n.inputs))
    names = [o.name for o in graph.outputs] if outputs == "marked" else list(vals)
    return {k: vals[k].numpy() for k in names}
