"""Runs a recorded graph with PyTorch, one function per op (see `core`)."""
from .core import REF, run_reference
from . import conv, elementwise, nn, shape  # noqa: F401  (each registers its references)

__all__ = ["REF", "run_reference"]
