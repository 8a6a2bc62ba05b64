"""Emits a recorded graph through TensorRT's network definition API, one function per op (see `core`)."""
from .core import EMIT, Emission, emit, emitter
from . import conv, elementwise, nn, reduce, shape  # noqa: F401  (each registers its emitters)
from . import index, norm  # noqa: F401  (indexing and normalization emitters)
from . import attention, rnn  # noqa: F401  (attention and recurrent emitters)
from . import quant  # noqa: F401  (explicit quantization: Q/DQ and quantized-weight layers)
from . import tensor  # noqa: F401  (einsum, sort, scatters, tensor indices)

__all__ = ["EMIT", "Emission", "emit", "emitter"]
