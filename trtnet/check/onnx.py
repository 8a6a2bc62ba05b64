"""`--onnx`: check what TensorRT's OnnxParser made of an ONNX file against onnxruntime, layer by layer."""
import numpy as np

from .. import backend
from .report import check_network


def parse_onnx(path):
    """(builder, network) from TensorRT's own parser; a parse failure is one line naming the file."""
    t = backend.trt()
    builder = t.Builder(backend.logger())
    network = builder.create_network(1 << int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = t.OnnxParser(network, backend.logger())
    if not parser.parse_from_file(str(path)):
        errs = "; ".join(str(parser.get_error(i)).replace("\n", " ") for i in range(parser.num_errors))
        raise ValueError(f"{path}: TensorRT's OnnxParser rejected it: {errs or 'no reason given'}")
    return builder, network, parser


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
