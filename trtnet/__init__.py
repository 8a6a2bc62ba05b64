"""trtnet: write TensorRT networks in Python, load PyTorch weights, build engines without ONNX, check them.

`import trtnet` loads neither torch nor TensorRT: commands load them when they need them."""
from .errors import TrtnetError
from .graph import Graph, GraphError, Node
from .ops import *  # noqa: F401,F403  (the layer API: see trtnet.ops.__all__)
from .ops import __all__ as _ops
from .weights import MissingWeightError, WeightFileError, WeightMap, load_weights, save_safetensors, save_wts
from .build import build  # noqa: E402  (the function shadows the subpackage name, as intended)
from .check.report import check_graph_at  # noqa: E402
from .quantize import check_quantized, quantize  # noqa: E402  (the function shadows the module name, as build does)

__version__ = "0.2.0"
__all__ = ["TrtnetError", "Graph", "GraphError", "Node", "MissingWeightError", "WeightFileError", "WeightMap", "load_weights",
           "save_safetensors", "save_wts", "build", "check", "quantize", *_ops]


def check(graph, inputs=None, reference=None, tol=None, fp16=False, shapes=None, quantize=None, **calibration):
    """Check `graph` as TensorRT holds it against PyTorch: every layer against the graph's PyTorch reference
    executor, every output against `reference` (an nn.Module taking the graph's inputs in order) where given.

    inputs: {name: array}; by default seeded samples at each profile shape of `shapes` (default: the minimum
    and maximum of the graph's ranges). `quantize` ("int8", "fp8", "int8-weights", "int4-weights", with
    trtnet.build's calib, calib_method, calib_samples, calib_cache, keep) checks the quantized network against
    the fake-quantized reference on `inputs` (default: seeded samples) and reports its cost against `reference`
    (else the fp32 graph). Returns a CheckReport, or a list of them for several shapes."""
    if quantize:
        return check_quantized(graph, quantize, None, reference, inputs, tol, fp16, **calibration)
    return check_graph_at(graph, inputs, reference, tol, fp16, shapes)
