"""What building, checking and quantizing share, below all three: finding and loading a model's weights (shaped
from its PyTorch twin where the file stores no shapes), the twin holding them, running it, and the shapes to
verify at."""
import os

import numpy as np

from . import zoo
from .events import Events
from .weights import WeightFileError, load_weights

WEIGHT_SUFFIXES = (".wts", ".safetensors", ".pth", ".pt")


def find_weights(name, weights=None, directory="weights", spec=None):
    """The weights file: given, else weights/NAME.* (beside a model file: NAME.* next to it)."""
    if weights:
        return weights
    dirs = [directory] + ([os.path.dirname(spec.file)] if spec is not None and spec.file else [])
    tried = [os.path.join(d, name + s) for d in dirs for s in WEIGHT_SUFFIXES]
    for p in tried:
        if os.path.exists(p):
            return p
    what = spec.file if spec is not None and spec.file else name
    raise WeightFileError(f"no weights for '{name}': looked for {', '.join(tried)}; "
                          f"write them with `python scripts/export_wts.py {what}` or pass --weights PATH")


def load_model(name, weights=None, shape=None, events=None):
    """(registered Model, WeightMap, recorded graph) for a zoo model name or a model file (`path.py[:name]`)."""
    events = events or Events()
    with events.phase("import model"):
        spec = zoo.get(name)
    w = load_model_weights(spec, weights, events)
    with events.phase("record"):
        return spec, w, spec.graph(w, shape)


def load_model_weights(spec, weights=None, events=None):
    """The model's WeightMap; a `.wts` file stores no shapes, so they come from the model's PyTorch twin."""
    events = events or Events()
    with events.phase("load weights"):
        w = load_weights(find_weights(spec.name, weights, spec=spec))
    if w.source.lower().endswith(".wts") and spec.torch_module is not None:
        with events.phase("shapes from the PyTorch module"):
            w.shaped(twin_shapes(spec))
    return w


def twin_shapes(spec):
    """{state_dict name: shape} of the model's PyTorch module, made on the meta device where it can be."""
    module = _on_meta(spec)
    module = spec.torch_module() if module is None else module
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _on_meta(spec):
    """The model's PyTorch module made on the meta device (nothing allocated or computed), or None where its
    constructor computes with values (YOLO's)."""
    import torch
    try:
        with torch.device("meta"):
            return spec.torch_module()
    except Exception:  # noqa: BLE001  (any constructor that needs real values)
        return None


def load_state(module, w):
    """Copy WeightMap `w` into `module` (shapes from the module: .wts stores none)."""
    import torch
    state = module.state_dict()  # keeps `_metadata`, which some modules' loaders check (MNASNet)
    for k, v in state.items():
        arr = np.asarray(w[k])
        if arr.size != v.numel():
            raise WeightFileError(f"{w.source}: tensor '{k}' has {arr.size} values, the PyTorch model expects "
                                  f"{tuple(v.shape)} ({v.numel()} values)")
        state[k] = torch.from_numpy(arr.reshape(tuple(v.shape))).to(v.dtype)
    module.load_state_dict(state)
    return module


def torch_reference(spec, w):
    """The model's PyTorch module holding the weights of `w`. Made on the meta device and given memory
    afterwards, it skips a random initialisation that every weight then replaces (a second for ResNet-50);
    a module with buffers that its state_dict lacks (computed in its constructor) is made as usual."""
    module = _on_meta(spec)
    if module is None or set(dict(module.named_buffers())) - set(module.state_dict()):
        module = spec.torch_module()
    else:
        module = module.to_empty(device="cpu")
    return load_state(module, w).eval()


def run_torch(module, x, output=None):
    """The module's output as numpy; `output` picks an entry where it returns a dict (segmentation's 'out')."""
    import torch
    with torch.no_grad():
        y = module(torch.from_numpy(x))
    return (y[output] if isinstance(y, dict) else y).numpy()


def run_module(module, graph, inputs, output=None, progress=None):
    """{graph output name: array} from `module` called with the graph's inputs in order. Its outputs (a tensor,
    a tuple/list, or a dict: by the graph's output names where they match, else `output`, else in order) map
    to the graph's outputs in order. `progress(done, total)` hears of each leaf module run."""
    import torch
    args = [torch.from_numpy(np.ascontiguousarray(inputs[n.name])) for n in graph.inputs]
    leaves = [m for m in module.modules() if not any(m.children())] if progress else []
    done = []

    def step(*_):  # returns None: a forward hook's result would replace the module's output
        done.append(1)
        progress(len(done), max(len(done), len(leaves)))

    hooks = [m.register_forward_hook(step) for m in leaves]
    try:
        with torch.no_grad():
            y = module(*args)
    finally:
        for h in hooks:
            h.remove()
    names = [o.name for o in graph.outputs]
    if isinstance(y, dict):
        y = [y[k] for k in names] if all(k in y for k in names) else [y[output]] if output else list(y.values())
    elif hasattr(y, "last_hidden_state") and not isinstance(y, torch.Tensor):
        y = list(y.values())
    elif not isinstance(y, (tuple, list)):
        y = [y]
    flat = []
    for v in y:
        flat.extend(v if isinstance(v, (tuple, list)) else [v])
    if len(flat) < len(names):
        raise ValueError(f"the PyTorch module returns {len(flat)} outputs, the graph has {len(names)}")
    return {k: v.detach().cpu().numpy() for k, v in zip(names, flat)}


def check_shapes(graph, profiles, samples=None):
    """Named sizes to verify at: each profile's minimum and maximum (the batch capped at `samples`)."""
    envs = []
    for p in profiles:
        for which in (0, 2):
            env = {k: v[which] for k, v in p.items()}
            if samples and "N" in env:
                env["N"] = max(p["N"][0], min(env["N"], samples))
            env = {k: max(v, 1) for k, v in env.items()}
            if env not in envs:
                envs.append(env)
    return envs


TRAIN_THREADS = 2   # training's float sums depend on the thread count: a fixed one gives the same weights whatever
                    # else changed it (importing silero-vad sets one thread)


def export_state(name, checkpoint=None, seed=0):
    """{state_dict name: float32 array} for a zoo model or model file (`path.py[:name]`): from `checkpoint`, by
    training on bundled data, or seeded."""
    import torch
    spec = zoo.get(name)
    torch.manual_seed(seed)
    module = spec.torch_module()
    if checkpoint:
        load_state(module, load_weights(checkpoint))
    elif spec.state is not None:
        return {k: np.asarray(v, np.float32) if np.asarray(v).dtype.kind == "f" else np.asarray(v)
                for k, v in spec.state().items()}
    elif spec.train is not None:
        threads = torch.get_num_threads()
        torch.set_num_threads(TRAIN_THREADS)
        try:
            spec.train(module)
        finally:
            torch.set_num_threads(threads)
    else:
        zoo.randomize_trivial(module, seed)
    return {k: v.detach().float().numpy() for k, v in module.state_dict().items()}
