"""The layer API: plain functions that take and return `Node`s, one family per module.

Weight-free ops take torch's names and argument names; layers with weights take a `WeightMap` view
(`w["layer1.0.conv1"]`) whose prefix names the TensorRT layer, so layer names match PyTorch's modules.
"""
from .core import OPS, PUBLIC
from . import conv, elementwise, nn, reduce, shape  # noqa: F401  (each registers its ops)
from . import index, norm  # noqa: F401  (indexing and normalization ops)
from . import attention, rnn  # noqa: F401  (attention and recurrent ops)
from . import quant  # noqa: F401  (explicit quantization: Q/DQ and quantized-weight layers)
from . import tensor  # noqa: F401  (einsum, sort, scatter, nonzero_static, cumprod, meshgrid, ...)

globals().update(PUBLIC)
__all__ = sorted(PUBLIC)
