"""trtnet: write TensorRT networks in Python, load PyTorch weights, build engines without ONNX, check them."""
from .graph import Graph, GraphError, Node
from .ops import (activation, adaptive_avg_pool, add, avg_pool, bn, clip, concat, conv, dropout, fc, flatten,
                  gelu, global_avg_pool, hardsigmoid, hardswish, identity, leaky_relu, max_pool, mul, pool, relu,
                  relu6, reshape, sigmoid, silu, softmax, sub, tanh, upsample)
from .weights import MissingWeightError, WeightFileError, WeightMap, load_weights, save_safetensors, save_wts
from .build import build  # noqa: E402  (the function shadows the subpackage name, as intended)

__version__ = "0.1.0"
