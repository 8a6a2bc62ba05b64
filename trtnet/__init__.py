"""trtnet: write TensorRT networks in Python, load PyTorch weights, build engines without ONNX, check them.

`import trtnet` loads neither torch nor TensorRT: commands load them when they need them."""
from .errors import TrtnetError
from .graph import Graph, GraphError, Node
from .ops import *  # noqa: F401,F403  (the layer API: see trtnet.ops.__all__)
from .ops import __all__ as _ops
from .weights import MissingWeightError, WeightFileError, WeightMap, load_weights, save_safetensors, save_wts
from .build import build  # noqa: E402  (the function shadows the subpackage name, as intended)
from .check import check  # noqa: E402
from .quantize import quantize  # noqa: E402  (the function shadows the module name, as build does)

__version__ = "0.2.0"
__all__ = ["TrtnetError", "Graph", "GraphError", "Node", "MissingWeightError", "WeightFileError", "WeightMap", "load_weights",
           "save_safetensors", "save_wts", "build", "check", "quantize", *_ops]
