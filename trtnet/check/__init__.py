"""trtnet.check: run a TensorRT network on the CPU as TensorRT holds it, and compare it with PyTorch.

`trtnet.check(...)` itself is defined in trtnet, above trtnet.quantize, as it may quantize first. `run_network`
and `UnsupportedLayerError` load torch and TensorRT on first use, so importing trtnet stays light."""


def __getattr__(name):
    if name in ("run_network", "UnsupportedLayerError"):
        from . import interp
        return getattr(interp, name)
    raise AttributeError(f"module 'trtnet.check' has no attribute {name!r}")

