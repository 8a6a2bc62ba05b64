"""How each captured call (torch function, tensor method, ATen op) is written as a trtnet call.

trtnet's weight-free ops take torch's names and argument names, so most calls are written as they are; this
table holds the exceptions (operators, pass-throughs, functional layers whose weights become a WeightMap view).
"""
import operator

import torch

import trtnet.ops as tops

INFIX = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "div": "/", "floordiv": "//", "matmul": "@",
         "mod": "%", "pow": "**", "iadd": "+", "imul": "*", "isub": "-", "itruediv": "/", "rsub": None,
         "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "and_": "&", "or_": "|",
         "xor": "^", "rshift": ">>", "lshift": "<<"}
PASS = {"contiguous", "clone", "detach", "dropout", "dropout1d", "dropout2d", "dropout3d", "alias", "lift_fresh_copy",
        "feature_dropout", "alpha_dropout", "_assert", "_assert_async", "requires_grad_", "_assert_is_none",
        "_assert_scalar", "_assert_tensor_metadata", "sym_constrain_range_for_size", "stochastic_depth"}
DROP_KW = {"inplace", "_stacklevel", "memory_format", "recompute_scale_factor", "antialias", "layout", "device",
           "pin_memory", "non_blocking", "copy"}
RENAME = {"view": "reshape", "_unsafe_view": "reshape", "adaptive_avg_pool1d": "adaptive_avg_pool",
          "adaptive_avg_pool2d": "adaptive_avg_pool", "adaptive_avg_pool3d": "adaptive_avg_pool",
          "adaptive_max_pool1d": "adaptive_max_pool", "adaptive_max_pool2d": "adaptive_max_pool",
          "max_pool1d": "max_pool", "max_pool2d": "max_pool", "max_pool3d": "max_pool", "avg_pool1d": "avg_pool",
          "avg_pool2d": "avg_pool", "avg_pool3d": "avg_pool", "concat": "cat", "concatenate": "cat",
          "upsample_nearest2d": "interpolate", "swapdims": "swapaxes", "true_divide": "div", "clip": "clamp",
          "multiply": "mul", "subtract": "sub", "divide": "div", "t": "transpose"}
VARARGS = {"reshape", "view", "permute", "expand", "repeat", "tile"}
WEIGHTED = {  # functional layer -> (trtnet op, tensor argument names in torch's order)
    "conv1d": ("conv", ("weight", "bias")), "conv2d": ("conv", ("weight", "bias")),
    "conv3d": ("conv", ("weight", "bias")), "linear": ("fc", ("weight", "bias")),
    "layer_norm": ("layer_norm", ("weight", "bias")), "group_norm": ("group_norm", ("weight", "bias")),
    "batch_norm": ("bn", ("running_mean", "running_var", "weight", "bias")),
    "embedding": ("embedding", ("weight",)), "rms_norm": ("rms_norm", ("weight",)),
}
NORMS = {"layer_norm", "group_norm", "rms_norm"}    # written as trtnet's norms with or without weights


def nms(boxes, scores, max_per_class, iou_threshold=0.5, score_threshold=0.0, box_coding="corners",
        topk_box_limit=5000):
    """tn.nms for PyTorch code: a forward that calls it ports to TensorRT's NMS layer (the tracer keeps the call);
    run eagerly, it gives the same fixed-size rows and count from torchvision's nms."""
    from ..reference.tensor import nms_rows
    if box_coding not in ("corners", "center"):
        raise ValueError(f"box_coding {box_coding!r}: expected 'corners' or 'center'")
    return nms_rows(boxes, scores, int(max_per_class), float(iou_threshold), float(score_threshold),
                    box_coding == "center", int(topk_box_limit))


LEAVES = (nms,)   # functions the tracer records as one call


def torch_name(node):
    """The torch name of a call_function/call_method target (aten overloads without their overload)."""
    t = node.target
    if isinstance(t, str):
        return t
    if isinstance(t, torch._ops.OpOverload):
        return t._schema.name.split("::")[-1]
    if t is getattr:
        return "getattr"
    if t in vars(operator).values():
        return t.__name__.strip("_") if t.__name__ not in ("and_", "or_") else t.__name__
    return getattr(t, "__name__", str(t))


def known(name):
    return name in tops.__all__
