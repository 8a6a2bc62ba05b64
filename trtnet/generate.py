"""Token generation with a decoder network of trtnet.llm's form: the prompt read in one step, then one token per
step, each step's presents fed back as the next step's pasts. It runs on a TensorRT engine where one can
execute, else on the CPU through trtnet.check's interpreter of the network as TensorRT holds it."""
import time
from dataclasses import dataclass, field

import numpy as np

from . import runtime
from .engine import build_engine, create_network
from .graph import Graph

INTERPRETER = "trtnet.check's interpreter"


@dataclass
class Generation:
    tokens: np.ndarray          # (N, prompt + new tokens)
    ran: str                    # what ran the network: a TensorRT engine, or the interpreter and why
    seconds: float              # decoding time, network setup (emission, engine build) excluded
    new_tokens: int
    logits: list = field(default_factory=list, repr=False)   # per step, the (N, V) logits each token came from

    @property
    def tokens_per_s(self):
        return self.new_tokens * len(self.tokens) / max(self.seconds, 1e-9)


def generate(network, input_ids, max_new_tokens, do_sample=False, temperature=1.0, top_k=None, seed=0):
    """Generate `max_new_tokens` after `input_ids` (N, S) with `network`: a trtnet Graph, an engine plan
    (bytes or a path) or a trtnet.runtime.Engine. Greedy (the first of equal maxima) or sampled from the
    softmax of logits / temperature, restricted to the top_k largest where given, from a seeded generator."""
    if do_sample and not temperature > 0:
        raise ValueError(f"temperature must be positive to sample, got {temperature}")
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ValueError(f"input_ids must be (batch, length >= 1), got shape {ids.shape}")
    run, pasts, ran = runner(network)
    n, rng = len(ids), np.random.default_rng(seed)
    state = {name: np.zeros((n, heads, 0, dim), dtype) for name, heads, dim, dtype in pasts}
    tokens, feed, done, logits = ids.astype(np.int64), ids.astype(np.int64), 0, []
    start = time.perf_counter()
    for _ in range(max_new_tokens):
        s = feed.shape[1]
        positions = np.broadcast_to(np.arange(done, done + s, dtype=np.int64), (n, s))
        out = run({"input_ids": feed, "position_ids": np.ascontiguousarray(positions), **state})
        logits.append(np.asarray(out["logits"][:, -1], np.float32))
        feed = choose(logits[-1], do_sample, temperature, top_k, rng)[:, None]
        tokens, done = np.concatenate([tokens, feed], 1), done + s
        state = {name: out[name.replace("past_", "present_", 1)] for name in state}
    return Generation(tokens, ran, time.perf_counter() - start, max_new_tokens, logits)


def choose(logits, do_sample=False, temperature=1.0, top_k=None, rng=None):
    """The next token of each row of `logits` (N, V): the argmax, or a sample."""
    if not do_sample:
        return np.argmax(logits, -1).astype(np.int64)
    z = logits.astype(np.float64) / temperature
    if top_k:
        kth = np.sort(z, -1)[:, -min(top_k, z.shape[-1]), None]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.array([rng.choice(len(row), p=row) for row in p], np.int64)


def check_decoder(graph):
    """Raise ValueError unless `graph` takes trtnet.llm's inputs."""
    names = [x.name for x in graph.inputs]
    if names[:2] != ["input_ids", "position_ids"] or not all(n.startswith("past_") for n in names[2:]):
        raise ValueError(f"'{graph.name}' is not a decoder network of trtnet.llm's form: its inputs are "
                         f"{', '.join(names)}, expected input_ids, position_ids, past_key_0, past_value_0, ...")


def runner(network):
    """(run({input: array}) -> {output: array}, [(past name, heads, head size, dtype)], what runs it)."""
    if isinstance(network, Graph):
        check_decoder(network)
        pasts = [(x.name, x.shape[1], x.shape[3], x.dtype) for x in network.inputs if x.name.startswith("past_")]
        why = runtime.execution_unavailable()
        if why is not None:
            return _interpreter(network), pasts, f"{INTERPRETER} ({why})"
        network = build_engine(network, progress=False)[0]
    engine = network if isinstance(network, runtime.Engine) else runtime.Engine(network, runtime_cache=False)
    pasts = [(s.name, s.shape[1], s.shape[3], s.dtype) for s in engine.inputs if s.name.startswith("past_")]
    dtypes = {s.name: s.dtype for s in engine.inputs}
    return (lambda inputs: engine(**{k: v.astype(dtypes[k]) for k, v in inputs.items()}),
            pasts, f"a TensorRT engine on GPU {engine.device}")


def _interpreter(graph):
    from .check.interp import run_network   # loads torch
    held = create_network(graph)   # the builder and the emission keep the network's weights alive
    dtypes = {x.name: x.dtype for x in graph.inputs}
    return lambda inputs: run_network(held[1], {k: v.astype(dtypes[k]) for k, v in inputs.items()})


@dataclass
class Comparison:
    ok: bool
    line: str


def compare_with_module(generation, module, prompt):
    """Generation's greedy tokens against the transformers module's own `generate(do_sample=False)` on `prompt`:
    the first step where they differ, with the tokens and the logits' error there."""
    import copy
    import torch
    config = copy.deepcopy(module.generation_config)
    config.update(do_sample=False, max_new_tokens=generation.new_tokens, min_new_tokens=None, eos_token_id=None,
                  num_beams=1, output_logits=True, return_dict_in_generate=True)
    ids = torch.from_numpy(np.asarray(prompt, np.int64))
    with torch.no_grad():
        ref = module.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
    theirs = ref.sequences.numpy()[:, ids.shape[1]:]
    ours = generation.tokens[:, ids.shape[1]:]
    errors = [float(np.abs(a - b.float().numpy()).max()) for a, b in zip(generation.logits, ref.logits)]
    for step in range(generation.new_tokens):
        if step >= theirs.shape[1] or (ours[:, step] != theirs[:, step]).any():
            row = int(np.argmax(ours[:, step] != theirs[:, step])) if step < theirs.shape[1] else 0
            other = f"token {int(theirs[row, step])}" if step < theirs.shape[1] else "no token (it stopped)"
            error = f"{errors[step]:.3g}" if step < len(errors) else "unknown"
            return Comparison(False, f"step {step}: the network chose token {int(ours[row, step])} (sequence {row}), "
                                     f"transformers' generate {other}; logits' max abs error {error} at this step")
    return Comparison(True, f"{generation.new_tokens} greedy tokens equal to transformers' generate "
                            f"(logits' max abs error {max(errors):.3g})")
