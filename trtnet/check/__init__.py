from .interp import run_network, UnsupportedLayerError

__all__ = ["run_network", "UnsupportedLayerError"]
