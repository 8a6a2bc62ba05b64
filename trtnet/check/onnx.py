"""`--onnx`: check what TensorRT's OnnxParser made of an ONNX file against onnxruntime, layer by layer."""
import numpy as np

from .. import backend
from .report import check_network


def parse_onnx(source):
    """(builder, network, parser) from TensorRT's own parser, of a file or an onnx ModelProto; a parse failure is
    one line naming the file (or the model's graph)."""
    t = backend.trt()
    builder = t.Builder(backend.logger())
    network = builder.create_network(1 << int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = t.OnnxParser(network, backend.logger())
    proto = hasattr(source, "SerializeToString")
    if not (parser.parse(source.SerializeToString()) if proto else parser.parse_from_file(str(source))):
        errs = "; ".join(str(parser.get_error(i)).replace("\n", " ") for i in range(parser.num_errors))
        where = f"ONNX graph {source.graph.name!r}" if proto else source
        raise ValueError(f"{where}: TensorRT's OnnxParser rejected it: {errs or 'no reason given'}")
    return builder, network, parser


def node_cases(op_type):
    """ONNX's node test cases of one operator ("LSTM", "Attention", ...), by name: (model, inputs, expected
    outputs), made by onnx's own case code (the wheel ships no data files) in the module named after the
    operator. Importing that one module runs only its cases (collect_testcases would run every operator's, for
    seconds). The `_expanded` variants, graphs of the operator's function body, are left out."""
    import importlib
    from onnx.backend.test.case import node
    importlib.import_module(f"{node.__name__}.{op_type.lower()}")
    return {c.name: (c.model, *c.data_sets[0]) for c in node._NodeTestCases
            if [n.op_type for n in c.model.graph.node] == [op_type]}


def run_onnx(model, inputs):
    """Parse an onnx ModelProto with TensorRT's OnnxParser and run the network with the interpreter. `inputs`: the
    graph inputs' arrays in order (as ONNX's node cases hold them). Returns (network, {output name: array})."""
    from .interp import run_network
    held = parse_onnx(model)
    feeds = dict(zip((i.name for i in model.graph.input), inputs))
    return held[1], run_network(held[1], feeds)


def onnxruntime_all(path, feeds):
    """Every named ONNX value (not only the graph outputs), as onnxruntime computes it."""
    import onnx
    import onnxruntime as ort
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(v for v in model.graph.value_info if v.name not in known)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds))), sorted(known)


def check_onnx_file(path, batch=2, tol=1e-4, seed=0):
    builder, network, parser = parse_onnx(path)
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(batch if d == -1 else d for d in tensor.shape)
        feeds[tensor.name] = rng.standard_normal(shape, dtype=np.float32)
    references, outputs = onnxruntime_all(path, feeds)
    finals = {name: references[name] for name in outputs}
    return check_network(network, feeds, references, finals, tol,
                         f"TensorRT network parsed from {path} ({network.num_layers} layers, run by trtnet.check) "
                         "vs onnxruntime")
