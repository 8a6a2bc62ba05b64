"""python -m trtnet.check MODEL: run the TensorRT network layer by layer on the CPU and compare it with PyTorch."""
import importlib.util
import os
import sys

from .. import cli, zoo
from ..engine import profiles_for
from ..events import Events
from ..generate import check_decoder, compare_with_module, generate
from ..harness import check_shapes, load_model_weights, torch_reference
from ..quantize import add_arguments as add_quant_arguments, advise_quantized, check_quantized, \
    parse_arguments as parse_quant_arguments
from .advise import advise
from .dumps import compare_dumps, save_tensors
from .module import float64_outputs, rounding, run_captured
from .report import BF16_TOL, DEFAULT_TOL, FP16_TOL, PLOT_FORMATS, check_graph, half_tol, plot_errors

EPILOG = """examples:
  python -m trtnet.check lenet
  python -m trtnet.check resnet50 --batch 1 --all
  python -m trtnet.check mymodel.py:tiny --shapes images:1x3x32x32,2x3x48x48,4x3x64x64
  python -m trtnet.check --onnx model.onnx          # TensorRT's OnnxParser vs onnxruntime
  python -m trtnet.check lenet --fp8                # the FP8 network vs its fake-quantized reference, and its cost
  python -m trtnet.check llama.py --generate 32     # a decoder's greedy tokens vs transformers' generate

The network is the one TensorRT holds: every layer's type, attributes and weights are read back from the
INetworkDefinition and executed with TensorRT's documented semantics, so no GPU is needed. It runs at each
profile's minimum and maximum shapes (the batch N defaults to 1..4); each layer's output is compared with
the same-named tensor of the graph's PyTorch reference executor and every output with the model's PyTorch
module; the first layer over tolerance is marked. Exit status 1 on a mismatch."""


def arguments(argv):
    p = cli.parser("python -m trtnet.check", __doc__.split(":", 1)[1].strip(), EPILOG)
    p.add_argument("--onnx", metavar="FILE", help="check an ONNX file parsed by TensorRT's OnnxParser against onnxruntime")
    p.add_argument("--shape", metavar="CxHxW", help="sample shape for zoo models, as 1x32x32 or 1,32,32 "
                                                    "(default: the model's own)")
    p.add_argument("--tol", help=f"relative error tolerance (default {DEFAULT_TOL:g}, {FP16_TOL:g} with --fp16, "
                   f"{BF16_TOL:g} with --bf16)")
    p.add_argument("--fp16", action="store_true", help="check the half-precision network trtnet.build --fp16 emits")
    p.add_argument("--bf16", action="store_true", help="check the bfloat16 network trtnet.build --bf16 emits")
    p.add_argument("--all", action="store_true", help="list every layer, also those without a reference tensor")
    p.add_argument("--plot", metavar="FILE", help="draw each layer's relative error along the network's depth "
                   "(against the graph's reference and the module; quantized: also against fp32) to FILE: .png, .svg or .pdf (needs matplotlib)")
    p.add_argument("--keep-fp32", metavar="PATTERN[,PATTERN...]", help="with --fp16 or --bf16: keep the layers "
                   "whose names match (fnmatch) in fp32, with casts around them")
    p.add_argument("--advise", action="store_true", help="with --fp16 or --bf16: find layers to keep in fp32 for "
                   "the outputs to pass, print the --keep-fp32 flag and check with it; with --int8, --fp8, ...: the "
                   "layers that cost the most and a --keep that meets --target-sqnr/--target-agreement, checked")
    p.add_argument("--save-outputs", metavar="DIR", help="write every tensor the interpreter computed (largest shape "
                   "checked) as DIR/NAME.npy, as trtnet.run --dump does")
    p.add_argument("--compare-dumps", nargs=2, metavar=("A", "B"), help="compare two dump directories tensor by "
                   "tensor (A against B) and exit")
    p.add_argument("--generate", metavar="N", help="a decoder network (trtnet.llm): generate N greedy tokens after "
                   "a seeded prompt and compare them with the module's own generate; exit 1 at the first difference")
    add_quant_arguments(p)
    args = p.parse_args(argv)
    if not args.list and not args.model and not args.onnx and not args.compare_dumps:
        p.error("a model name or file, or --onnx FILE, is required")
    return args


def validate(args):
    args.batch_range = None if args.batch is None else cli.parse_batch(args.batch)
    args.shape_specs = cli.parse_shapes(args.shapes, args.profile)
    args.sample_shape = None if args.shape is None else cli.parse_dims(args.shape)
    args.tolerance = None if args.tol is None else _tolerance(args.tol)
    args.new_tokens = None if args.generate is None else cli.count(args.generate, "--generate")
    cli.parse_device(args.device)
    cli.check_input_file(args.weights, "--weights")
    cli.check_input_file(args.onnx, "--onnx")
    args.quant = parse_quant_arguments(args)
    if args.plot:
        _check_plot(args.plot)
    args.keep_fp32 = [k for k in (args.keep_fp32 or "").split(",") if k]
    cli.check_half(args, args.advise)
    args.half = "bf16" if args.bf16 else "fp16" if args.fp16 else None
    if args.onnx:
        with open(args.onnx, "rb") as f:
            head = f.read(64)
        if not head or head[:1] not in (b"\x08", b"\x0a", b"\x12", b"\x1a", b"\x3a", b"\x42", b"\x52"):
            raise cli.UsageError(f"--onnx {args.onnx!r}: not an ONNX model (a protobuf ModelProto); "
                                 f"it starts with {head[:16]!r}")


def _check_plot(path):
    cli.check_output(path, "--plot")
    if os.path.splitext(path)[1][1:].lower() not in PLOT_FORMATS:
        raise cli.UsageError(f"--plot {path!r}: expected a file name ending in .png, .svg or .pdf")
    if importlib.util.find_spec("matplotlib") is None:
        raise cli.UsageError("--plot needs matplotlib: pip install matplotlib")


def _tolerance(text):
    try:
        v = float(text)
    except ValueError:
        raise cli.UsageError(f"--tol: expected a number, got {text!r}") from None
    if not 0 < v < 1e6:
        raise cli.UsageError(f"--tol: {text!r} must be a positive relative error")
    return v


def check_model(args, events):
    """[CheckReport] at each profile's minimum and maximum shapes (the batch N 1..4 unless given)."""
    with events.phase("import model"):
        spec = zoo.get(args.model)
    w = load_model_weights(spec, args.weights, events)
    with events.phase("record"):
        graph = spec.graph(w, args.sample_shape)
    profiles = cli.to_profiles(graph, args.shape_specs, args.batch_range)
    if profiles is None and "N" in graph.dims:
        profiles = [{"N": default_batch(graph)}]
    profiles = profiles_for(graph, profiles)
    cli.guard_memory(graph, profiles)
    with events.phase("PyTorch module"):
        module = torch_reference(spec, w)
    if args.quant["quantize"]:   # on the held-out set (else seeded inputs at the profile's largest batch)
        samples = profiles[0]["N"][2] if "N" in graph.dims else 1
        with events.phase("check"):
            if args.advise:
                return advise_quantized(graph, args.quant.pop("quantize"), spec, module, args.target_sqnr,
                                        args.target_agreement, tol=args.tolerance, fp16=args.fp16, samples=samples,
                                        **args.quant)
            return [check_quantized(graph, args.quant.pop("quantize"), spec, module, tol=args.tolerance,
                                    fp16=args.fp16, samples=samples, **args.quant)]
    tol = args.tolerance or half_tol(args.half)

    def run_module_at(env, capture):
        """(inputs, module outputs, captured submodule outputs) at one shape."""
        inputs = spec.make_inputs(graph, env)
        with events.phase("PyTorch run"):
            return (inputs, *run_captured(module, graph, inputs, spec.output, events.step(), capture))

    if args.advise:   # every shape's cases at once: each trial set of fp32 layers is checked at all of them
        cases = [run_module_at(env, False)[:2] for env in check_shapes(graph, profiles)]
        with events.phase("advise fp32 layers"):
            advice = advise(graph, cases, tol, progress=events.step(), half=args.half)
        print("\n".join(advice.lines()))
        reports = advice.reports
    else:             # one shape at a time, each layer compared as computed and released
        reports = []
        for env in check_shapes(graph, profiles):
            inputs, expected, got = run_module_at(env, True)
            with events.phase("TensorRT network (interpreter)"):
                reports.append(check_graph(graph, inputs, expected, tol, args.half, progress=events.step(),
                                           keep_fp32=args.keep_fp32, module_values=got,
                                           stream=not args.save_outputs))
            if reports[-1].added_up and module is not None and not args.half:
                with events.phase("PyTorch run in float64"):   # is the error fp32 rounding PyTorch makes too?
                    exact = float64_outputs(module, graph, inputs, spec.output)
                over = [k for k, m in reports[-1].final.items() if m["rel"] > tol]
                reports[-1].rounding = rounding(exact, expected, reports[-1].values, tol, over)
            inputs = expected = got = None
    if args.save_outputs:
        save_tensors(args.save_outputs, reports[-1].values)
        print(f"saved {len(reports[-1].values)} tensors to {args.save_outputs}")
    return reports


CHECK_COPIES = 5   # a check holds each tensor several times (interpreter, reference, module, comparisons): yolo11s at
                  # 2x3x1280x1280 peaked at 4.9 times its tensors' size


def default_batch(graph, largest=4):
    """The batch range checked by default: up to `largest` (the interpreter runs on the CPU), less where this
    machine's memory would not hold every layer's tensors at that batch (fcn_resnet50 at 520x520 took 22 GB
    at N=4)."""
    lo, _, hi = graph.ranges["N"]
    n, have = min(hi, largest), cli.available_memory()
    while n > lo and have and cli.memory_needed(graph, [{**graph.ranges, "N": (lo, n, n)}])[0] * CHECK_COPIES > have:
        n -= 1
    if n < min(hi, largest):
        print(f"note: checking at N={lo}..{n}, not {min(hi, largest)}: the layers' tensors at a larger batch "
              f"would not fit in this machine's memory (give --batch to choose)", file=sys.stderr)
    return lo, n, n


PROMPT = (2, 8)   # the prompt --generate starts from: 2 sequences of 8 seeded token ids


def check_generation(args, events):
    """--generate: the network's greedy tokens (an engine where one runs, else the interpreter) against the
    module's generate; 0 when all are equal, else 1 with the first step that differs."""
    with events.phase("import model"):
        spec = zoo.get(args.model)
    w = load_model_weights(spec, args.weights, events)
    with events.phase("record"):
        graph = spec.graph(w, args.sample_shape)
    check_decoder(graph)
    with events.phase("PyTorch module"):
        module = torch_reference(spec, w)
    prompt = spec.make_inputs(graph, {"N": PROMPT[0], "S": PROMPT[1], "P": 0})["input_ids"]
    with events.phase(f"generate {args.new_tokens} tokens"):
        result = generate(graph, prompt, args.new_tokens)
    with events.phase("transformers' generate"):
        comparison = compare_with_module(result, module, prompt)
    print(f"{graph.name}: {args.new_tokens} tokens after a {PROMPT[0]}x{PROMPT[1]} prompt, run by {result.ran}: "
          f"{result.tokens_per_s:.1f} tokens/s")
    print(f"tokens: {result.tokens[0, PROMPT[1]:].tolist()}")
    if not comparison.ok:
        print(f"error: {comparison.line}", file=sys.stderr)
        return 1
    print(comparison.line)
    return 0


def check_onnx(args, events):
    from .onnx import check_onnx_file
    batch = args.batch_range[2] if args.batch_range else 2
    with events.phase("check"):
        return [check_onnx_file(args.onnx, batch, args.tolerance or DEFAULT_TOL)]


def run(args, timeline):
    events = Events(timeline)
    with events.phase("import TensorRT"):
        cli.setup(args)
    if args.new_tokens:
        return check_generation(args, events)
    if args.compare_dumps:
        reports = [compare_dumps(*args.compare_dumps, args.tolerance or DEFAULT_TOL)]
    else:
        reports = check_onnx(args, events) if args.onnx else check_model(args, events)
    for r in reports:
        print(r.table(args.all))
        print(r.summary())
    if args.plot:
        with events.phase("plot"):
            plot_errors(reports, args.plot)
        print(f"layer errors drawn in {args.plot}")
    print(timeline.summary())
    return 0 if all(r.ok for r in reports) else 1


def main(argv=None):
    return cli.command(argv, arguments, validate, run)


if __name__ == "__main__":
    sys.exit(main())
