"""Emits a recorded graph through TensorRT's network definition API, one function per op (see `core`)."""
from .core import EMIT, Emission, emit, emitter
from . import conv, elementwise, nn, reduce, shape  # noqa: F401  (each registers its emitters)
from . import index, norm  # noqa: F401  (indexing and normalization emitters)
from . import attention, rnn  # noqa: F401  (attention and recurrent emitters)

__all__ = ["EMIT", "Emission", "emit", "emitter"]
