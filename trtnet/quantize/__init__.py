"""`trtnet.quantize`: a recorded graph -> a new graph with explicit Q/DQ (fake_quant) nodes, as TensorRT's
explicit quantization wants them: on the inputs of conv, fc and matmul (activation per tensor, weight per
output channel; an FP8 network input by a power-of-two scale), on both inputs of a residual add that follows a
convolution (so it fuses), BatchNorm folded into the convolution before its weights are quantized. Activation
ranges come from calibration on the graph's PyTorch reference executor (max, percentile, entropy or mse over
histograms), kept in a JSON cache; a ModelOpt state dict's `*_quantizer._amax` entries may give them instead.

Weight-only precisions (int8-weights, int4-weights) quantize weights only, for an fp16 network.

rewrite: placement and the graph rewrite; calibration: ranges, methods (auto: chosen by output SQNR), the cache
file; advise: per-layer sensitivity and the layers to keep; report: layer counts, the accuracy cost and its
bound, the checks of a quantized build or check; options: the command lines' quantization options."""
from .calibration import METHODS, Histogram, amax_of, load_calibration, read_modelopt
from .options import add_arguments, parse_arguments
from .report import (QUANT_TOL, QuantInfo, advise_quantized, check_quantized, cost, describe, for_model, report_info,
                     verify_build)
from .rewrite import PRECISIONS, plan, quantize

__all__ = ["METHODS", "Histogram", "amax_of", "load_calibration", "read_modelopt", "add_arguments", "parse_arguments",
           "QUANT_TOL", "QuantInfo", "advise_quantized", "check_quantized", "cost", "describe", "for_model",
           "report_info", "verify_build",
           "PRECISIONS", "plan", "quantize"]
