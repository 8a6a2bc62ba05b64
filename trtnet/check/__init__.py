"""trtnet.check: run a TensorRT network on the CPU as TensorRT holds it, and compare it with PyTorch.

`run_network` and `UnsupportedLayerError` load torch and TensorRT on first use, so importing trtnet stays light."""


def __getattr__(name):
    if name in ("run_network", "UnsupportedLayerError"):
        from . import interp
        return getattr(interp, name)
    raise AttributeError(f"module 'trtnet.check' has no attribute {name!r}")


def check(graph, inputs=None, reference=None, tol=None, fp16=False, shapes=None, quantize=None, **calibration):
    """Check `graph` as TensorRT holds it against PyTorch: every layer against the graph's PyTorch reference
    executor, every output against `reference` (an nn.Module taking the graph's inputs in order) where given.

    inputs: {name: array}; by default seeded samples at each profile shape of `shapes` (default: the minimum
    and maximum of the graph's ranges). `quantize` ("int8", "fp8", "int8-weights", "int4-weights", with
    trtnet.build's calib, calib_method, calib_samples, calib_cache, keep) checks the quantized network against
    the fake-quantized reference and reports its cost. Returns a CheckReport, or a list of them for several
    shapes."""
    from .report import check_graph_at
    return check_graph_at(graph, inputs, reference, tol, fp16, shapes, quantize=quantize, **calibration)
