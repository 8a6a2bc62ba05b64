"""trtnet: write TensorRT networks in Python, load PyTorch weights, build engines without ONNX, check them."""
from .graph import Graph, GraphError, Node
from .ops import (activation, adaptive_avg_pool, add, avg_pool, bn, chunk, clip, concat, constant, conv, dropout,
                  expand_batch, fc, flatten, gelu, global_avg_pool, hardsigmoid, hardswish, identity, layer_norm,
                  leaky_relu, matmul, max_pool, mul, permute, pool, relu, relu6, reshape, select, sigmoid, silu, slice,
                  softmax, sub, tanh, upsample)
from .weights import MissingWeightError, WeightFileError, WeightMap, load_weights, save_safetensors, save_wts
from .build import build  # noqa: E402  (the function shadows the subpackage name, as intended)

__version__ = "0.1.0"
