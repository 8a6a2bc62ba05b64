"""Runs a recorded graph with PyTorch, one function per op (see `core`)."""
from .core import REF, run_reference
from . import conv, elementwise, nn, reduce, shape  # noqa: F401  (each registers its references)
from . import index, norm  # noqa: F401  (indexing and normalization references)
from . import attention, rnn  # noqa: F401  (attention and recurrent references)
from . import quant  # noqa: F401  (explicit quantization: Q/DQ and quantized-weight layers)
from . import tensor  # noqa: F401  (einsum, sort, scatters, tensor indices)

__all__ = ["REF", "run_reference"]
