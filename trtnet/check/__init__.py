from .interp import run_network, UnsupportedLayerError
