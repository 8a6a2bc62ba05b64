"""Runs a recorded graph with PyTorch, one function per op (see `core`)."""
from .core import REF, run_reference
from . import conv, elementwise, nn, reduce, shape  # noqa: F401  (each registers its references)
from . import index, norm  # noqa: F401  (indexing and normalization references)
from . import attention, rnn  # noqa: F401  (attention and recurrent references)

__all__ = ["REF", "run_reference"]
