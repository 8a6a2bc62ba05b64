"""Runs a recorded graph with PyTorch (torch and torch.nn.functional), one function per op.

It is the graph's meaning in PyTorch terms: comparing it with the original nn.Module checks the
recording (layer order, weights, attributes); the TensorRT side is checked by `trtnet.check`.
"""
import numpy as np
import torch

from ..graph import GraphError
from ..registry import Registry

REF = Registry("PyTorch reference")   # graph op name -> fn(node, *input tensors[, env=sizes])
ref = REF.register
TORCH_TYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int8": torch.int8,
               "int32": torch.int32, "int64": torch.int64, "bool": torch.bool, "uint8": torch.uint8}


def t(a):
    """A numpy parameter as a torch tensor (0-d scalars stay 0-d)."""
    return torch.from_numpy(np.ascontiguousarray(a).reshape(np.shape(a)))


def size_env(graph, vals):
    """The value of every named dimension, read from the inputs' actual shapes."""
    return {s: int(vals[inp].shape[axis]) for s, (inp, axis) in graph.dims.items()}


def run_reference(graph, inputs, outputs="marked", given=None):
    """Evaluate `graph` on `inputs` ({input name: array}); returns numpy arrays by node name. `given`: {node name:
    array} values taken in place of the computed ones (a top-k's indices as the network chose among ties)."""
    vals, given = {}, given or {}
    with torch.no_grad():
        for n in graph.nodes:
            if n.op == "input":
                if n.name not in inputs:
                    raise GraphError(f"no value given for graph input '{n.name}' (inputs: "
                                     f"{', '.join(i.name for i in graph.inputs)})")
                vals[n.name] = torch.as_tensor(np.asarray(inputs[n.name])).to(TORCH_TYPES[n.dtype])
                if n.shape and len(n.shape) != vals[n.name].dim():
                    raise GraphError(f"input '{n.name}' has rank {len(n.shape)}, got an array of shape "
                                     f"{tuple(vals[n.name].shape)}")
                continue
            if n.op == "item":
                out = vals[n.inputs[0].name + "/outputs"][n.attrs["index"]]
                vals[n.name] = torch.as_tensor(given[n.name]).to(out.dtype) if n.name in given else out
                continue
            env = size_env(graph, vals) if n.op in DYNAMIC else None
            out = REF[n.op](n, *(vals[i.name] for i in n.inputs), **({"env": env} if env is not None else {}))
            if isinstance(out, tuple):
                vals[n.name + "/outputs"], out = out, out[0]
            vals[n.name] = out
    names = [o.name for o in graph.outputs] if outputs == "marked" else [n.name for n in graph.nodes]
    return {k: _numpy(vals[k]) for k in names}


DYNAMIC = set()   # ops whose reference needs the named sizes' values (`env`)


def needs_sizes(*ops):
    DYNAMIC.update(ops)


def _numpy(x):
    return (x.float() if x.dtype == torch.bfloat16 else x).numpy()


@ref("const")
def _const(n):
    return t(n.params["value"]).to(TORCH_TYPES[n.dtype])
