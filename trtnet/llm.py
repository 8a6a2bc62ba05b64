"""Decoder LLMs written with trtnet's layer API from a transformers config and the `*ForCausalLM` state_dict.

Every family reads like its architecture: the token embedding, a loop of blocks (norm, attention with rotary or
learned positions, an MLP or a mixture of experts), the final norm and the language-model head. The network takes
`input_ids` and `position_ids` (N, S) and each layer's past keys and values `past_key_{i}`/`past_value_{i}`
(N, Hkv, P, D), P >= 0 (0 when the prompt is read), and returns `logits` (N, S, V) and the presents
`present_key_{i}`/`present_value_{i}` (N, Hkv, P+S, D): the pasts of the next step (see trtnet.generate).

Torch and transformers are imported only by the functions that need them (the module, its config)."""
import functools
import math
import os
import pprint
import time
from dataclasses import dataclass

import numpy as np

from . import ops as tn
from .check.report import check_graph
from .files import write_atomic
from .graph import Graph
from .harness import run_module
from .weights import WeightMap, save_safetensors, save_wts
from .zoo import randomize_trivial

MAX_LENGTH = 256   # the default top of S and P: small random models are checked at both ends on the CPU
ACTIVATIONS = {"silu": tn.silu, "swish": tn.silu, "relu": tn.relu, "gelu": tn.gelu,
               "gelu_new": functools.partial(tn.gelu, approximate="tanh"),
               "gelu_pytorch_tanh": functools.partial(tn.gelu, approximate="tanh")}


class Decoder:
    """The network's inputs, the presents it returns and the attention every family shares."""

    def __init__(self, config, name, max_length=None):
        self.config = config
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        positions = getattr(config, "max_position_embeddings", None) or 2 * MAX_LENGTH
        top = min(max_length or MAX_LENGTH, positions // 2)   # P + S stays within the learned positions' table
        g = self.graph = Graph(name)
        self.ids = g.input("input_ids", ("N", "S"), "int64", ranges={"N": (1, 1, 8), "S": (1, 16, top)},
                           values=(0, config.vocab_size))
        self.positions = g.input("position_ids", ("N", "S"), "int64")
        self.pasts = [g.input(f"past_{kv}_{i}", ("N", self.kv_heads, "P", self.head_dim), ranges={"P": (0, 16, top)})
                      for i in range(config.num_hidden_layers) for kv in ("key", "value")]
        self.presents = []

    def rotary(self):
        """(cos, sin) of the angles position * inverse frequency, (N, S, rotary_dim / 2): one per rotated pair."""
        inv_freq, scaling = inverse_frequencies(self.config, self.head_dim)
        angles = tn.unsqueeze(self.positions.float(), -1, name="rope.positions") * \
            tn.tensor(inv_freq, self.ids, name="rope.inv_freq")
        cos, sin = tn.cos(angles, name="rope.cos"), tn.sin(angles, name="rope.sin")
        return (cos, sin) if scaling == 1 else (cos * scaling, sin * scaling)

    def attention(self, i, q, k, v, rope=None, window=None, scale=None, name="attn"):
        """Causal self-attention of layer i on projections (N, S, heads * D): heads split, positions rotated,
        keys and values appended to the pasts (the presents), grouped key/value heads shared; (N, S, heads * D)."""
        q, k, v = (self._heads(x, h, f"{name}.{n}_heads")
                   for x, h, n in ((q, self.heads, "q"), (k, self.kv_heads, "k"), (v, self.kv_heads, "v")))
        if rope is not None:
            q, k = (tn.rotary_embedding(x, *rope, rotary_dim=2 * rope[0].shape[-1], name=f"{name}.{n}_rot")
                    for x, n in ((q, "q"), (k, "k")))
        k = tn.cat([self.pasts[2 * i], k], 2, name=f"{name}.keys")
        v = tn.cat([self.pasts[2 * i + 1], v], 2, name=f"{name}.values")
        self.presents += [k, v]
        out = tn.causal_attention(q, k, v, scale=scale, window=window, name=f"{name}.attention")
        out = tn.permute(out, (0, 2, 1, 3), name=f"{name}.heads_last")
        return tn.reshape(out, (out.shape[0], out.shape[1], self.heads * self.head_dim), name=f"{name}.merge_heads")

    def _heads(self, x, heads, name):
        x = tn.reshape(x, (x.shape[0], x.shape[1], heads, self.head_dim), name=name)
        return tn.permute(x, (0, 2, 1, 3), name=f"{name}_first")

    def finish(self, hidden, head):
        """The graph with `logits` = hidden @ head.T and the presents as outputs."""
        self.graph.output(tn.fc(hidden, head, name="lm_head"), "logits")
        for x, past in zip(self.presents, self.pasts):
            self.graph.output(x, past.name.replace("past_", "present_"))
        return self.graph


def inverse_frequencies(config, head_dim):
    """(inverse frequencies of the rotated dims, scaling of cos/sin), as transformers' rope initialisation gives."""
    rope = dict(getattr(config, "rope_parameters", None) or {})
    kind = rope.get("rope_type", "default")
    if kind != "default":
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        inv, scaling = ROPE_INIT_FUNCTIONS[kind](config, "cpu")
        return inv.float().numpy(), float(scaling)
    dim = int(head_dim * rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0)))
    base = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    return (1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64).astype(np.float32) / dim)).astype(np.float32), 1.0


def window_of(config, i):
    """Layer i's sliding window, or None: per layer type where the config lists them (Qwen2), else the model's."""
    types = getattr(config, "layer_types", None)
    if types is not None and types[i] != "sliding_attention":
        return None
    return getattr(config, "sliding_window", None)


def gated_mlp(x, w, act, name):
    """down(act(gate(x)) * up(x)), with gate and up as two projections or one fused `gate_up_proj`."""
    if "gate_up_proj" in w:
        gate, up = tn.chunk(tn.fc(x, w["gate_up_proj"]), 2, -1, name=f"{name}.gate_up")
    else:
        gate, up = tn.fc(x, w["gate_proj"]), tn.fc(x, w["up_proj"])
    return tn.fc(tn.mul(act(gate), up, name=f"{name}.gated"), w["down_proj"])


def experts(x, w, config, name):
    """A routed mixture of experts (Mixtral): softmax over the router's logits, the top k renormalised, each
    token's output the routing-weighted sum of its experts' gated MLPs (every expert computed, weighted 0 where
    not chosen)."""
    n, k = config.num_local_experts, config.num_experts_per_tok
    probs = tn.softmax(tn.fc(x, w["gate"]), -1, name=f"{name}.router_probs")
    top, index = tn.topk(probs, k, -1, name=f"{name}.top_k")
    top = top / tn.sum(top, -1, keepdim=True, name=f"{name}.top_sum")
    chosen = tn.one_hot(index, n, name=f"{name}.chosen").float()
    routing = tn.sum(chosen * tn.unsqueeze(top, -1), -2, name=f"{name}.routing")            # (N, S, E)
    h = tn.unsqueeze(x, 0, name=f"{name}.tokens")                                            # (1, N, S, H)
    gate_up = tn.unsqueeze(tn.constant(x, w, "experts.gate_up_proj"), 1, name=f"{name}.gate_up_weights")
    gate, up = tn.chunk(tn.matmul(h, tn.transpose(gate_up, -1, -2)), 2, -1, name=f"{name}.experts.gate_up")
    down = tn.unsqueeze(tn.constant(x, w, "experts.down_proj"), 1, name=f"{name}.down_weights")
    y = tn.matmul(ACTIVATIONS[config.hidden_act](gate) * up, tn.transpose(down, -1, -2))  # (E, N, S, H)
    weights = tn.unsqueeze(tn.permute(routing, (2, 0, 1)), -1, name=f"{name}.expert_weights")
    return tn.sum(y * weights, 0, name=name)


def _head(w, embed):
    """lm_head's weights, the embedding's where they are tied (and the file holds them once)."""
    return w["lm_head"] if "lm_head" in w else embed


def llama(config, w, max_length=None):
    """Llama; also Qwen2 (q/k/v biases), Mistral (sliding window), Phi-3 (fused qkv_proj and gate_up_proj) and
    Mixtral (experts): pre-norm blocks of RMSNorm, rotary attention with grouped key/value heads, gated MLP."""
    net = Decoder(config, config.model_type, max_length)
    embed = w["model.embed_tokens"]
    x = tn.embedding(net.ids, embed)
    rope = net.rotary()
    act, eps = ACTIVATIONS[config.hidden_act], config.rms_norm_eps
    for i in range(config.num_hidden_layers):
        lw = w[f"model.layers.{i}"]
        a = lw["self_attn"]
        h = tn.rms_norm(x, lw["input_layernorm"], eps=eps)
        q, k, v = _qkv(h, a, net)
        x = x + tn.fc(net.attention(i, q, k, v, rope, window_of(config, i), name=a.prefix), a["o_proj"])
        h = tn.rms_norm(x, lw["post_attention_layernorm"], eps=eps)
        mlp = lw["mlp"]
        x = x + (experts(h, mlp, config, mlp.prefix) if "experts" in mlp else gated_mlp(h, mlp, act, mlp.prefix))
    return net.finish(tn.rms_norm(x, w["model.norm"], eps=eps), _head(w, embed))


def _qkv(h, a, net):
    """Query, key and value projections: three layers, or one fused qkv_proj split as [q | k | v]."""
    if "qkv_proj" in a:
        sizes = [net.heads * net.head_dim, net.kv_heads * net.head_dim, net.kv_heads * net.head_dim]
        return tn.split(tn.fc(h, a["qkv_proj"]), sizes, -1, name=f"{a.prefix}.qkv")
    return [tn.fc(h, a[f"{n}_proj"]) for n in "qkv"]


def gemma(config, w, max_length=None):
    """Gemma: Llama's blocks with the embedding scaled by sqrt(hidden size), RMSNorm weights applied as (1 + w)
    and a tanh-GELU gate."""
    net = Decoder(config, "gemma", max_length)
    embed = w["model.embed_tokens"]
    rows = tn.embedding(net.ids, embed, name=f"{embed.prefix}.rows")
    x = tn.mul(rows, np.float32(config.hidden_size ** 0.5), name=embed.prefix)   # the module's scaled embedding
    rope = net.rotary()
    act, eps = ACTIVATIONS[config.hidden_act], config.rms_norm_eps

    def norm(x, nw):
        return tn.rms_norm(x, WeightMap({"weight": 1.0 + nw["weight"]}, nw.source), eps=eps, name=nw.prefix)

    for i in range(config.num_hidden_layers):
        lw = w[f"model.layers.{i}"]
        a = lw["self_attn"]
        q, k, v = _qkv(norm(x, lw["input_layernorm"]), a, net)
        x = x + tn.fc(net.attention(i, q, k, v, rope, name=a.prefix), a["o_proj"])
        x = x + gated_mlp(norm(x, lw["post_attention_layernorm"]), lw["mlp"], act, lw["mlp"].prefix)
    return net.finish(norm(x, w["model.norm"]), _head(w, embed))


def conv1d(x, w):
    """GPT-2's Conv1D: a linear layer whose weight is stored (in, out)."""
    return tn.fc(x, WeightMap({"weight": np.ascontiguousarray(w["weight"].T), "bias": w["bias"]}, w.source),
                 name=w.prefix)


def gpt2(config, w, max_length=None):
    """GPT-2: learned positions, pre-LayerNorm blocks of fused-qkv attention (Conv1D weights) and a GELU MLP."""
    net = Decoder(config, "gpt2", max_length)
    t = w["transformer"]
    embed = t["wte"]
    x = tn.embedding(net.ids, embed) + tn.embedding(net.positions, t["wpe"])
    act, eps, e = ACTIVATIONS[config.activation_function], config.layer_norm_epsilon, config.hidden_size
    for i in range(config.num_hidden_layers):
        lw = t[f"h.{i}"]
        a = lw["attn"]
        q, k, v = tn.split(conv1d(tn.layer_norm(x, lw["ln_1"], eps=eps), a["c_attn"]), e, -1, name=f"{a.prefix}.qkv")
        scale = 1.0 if not config.scale_attn_weights else 1 / math.sqrt(net.head_dim)
        if config.scale_attn_by_inverse_layer_idx:
            scale /= i + 1
        x = x + conv1d(net.attention(i, q, k, v, scale=scale, name=a.prefix), a["c_proj"])
        h = tn.layer_norm(x, lw["ln_2"], eps=eps)
        x = x + conv1d(act(conv1d(h, lw["mlp.c_fc"])), lw["mlp.c_proj"])
    return net.finish(tn.layer_norm(x, t["ln_f"], eps=eps), _head(w, embed))


def gpt_neox(config, w, max_length=None):
    """GPT-NeoX (Pythia): a fused qkv projection interleaved per head ([q k v] of each head), rotary embedding on
    part of each head, and attention and MLP side by side on the same input (parallel residual)."""
    net = Decoder(config, "gpt_neox", max_length)
    m = w["gpt_neox"]
    x = tn.embedding(net.ids, m["embed_in"])
    rope = net.rotary()
    act, eps, d = ACTIVATIONS[config.hidden_act], config.layer_norm_eps, net.head_dim
    for i in range(config.num_hidden_layers):
        lw = m[f"layers.{i}"]
        a = lw["attention"]
        qkv = tn.fc(tn.layer_norm(x, lw["input_layernorm"], eps=eps), a["query_key_value"])
        qkv = tn.reshape(qkv, (qkv.shape[0], qkv.shape[1], net.heads, 3 * d), name=f"{a.prefix}.per_head")
        q, k, v = (tn.flatten(qkv[..., j * d:(j + 1) * d], 2, name=f"{a.prefix}.{n}") for j, n in enumerate("qkv"))
        attn = tn.fc(net.attention(i, q, k, v, rope, name=a.prefix), a["dense"])
        mlp_in = x if config.use_parallel_residual else x + attn
        h = tn.layer_norm(mlp_in, lw["post_attention_layernorm"], eps=eps)
        mlp = tn.fc(act(tn.fc(h, lw["mlp.dense_h_to_4h"])), lw["mlp.dense_4h_to_h"])
        x = x + attn + mlp if config.use_parallel_residual else mlp_in + mlp
    return net.finish(tn.layer_norm(x, m["final_layer_norm"], eps=eps), _head(w, m["embed_in"]))


OPT_POSITION_OFFSET = 2   # OPT's learned positions start at row 2 of their table


def opt(config, w, max_length=None):
    """OPT: learned positions offset by 2, LayerNorm blocks (before or after each sublayer) with biased
    projections and a ReLU MLP, optional projections between the embedding size and the hidden size."""
    net = Decoder(config, "opt", max_length)
    d = w["model.decoder"]
    embed = d["embed_tokens"]
    x = tn.embedding(net.ids, embed)
    if "project_in" in d:
        x = tn.fc(x, d["project_in"])
    x = x + tn.embedding(net.positions + OPT_POSITION_OFFSET, d["embed_positions"])
    act, before = ACTIVATIONS[config.activation_function], config.do_layer_norm_before
    for i in range(config.num_hidden_layers):
        lw = d[f"layers.{i}"]
        a = lw["self_attn"]
        h = tn.layer_norm(x, lw["self_attn_layer_norm"]) if before else x
        q, k, v = (tn.fc(h, a[f"{n}_proj"]) for n in "qkv")
        x = x + tn.fc(net.attention(i, q, k, v, name=a.prefix), a["out_proj"])
        x = x if before else tn.layer_norm(x, lw["self_attn_layer_norm"])
        h = tn.layer_norm(x, lw["final_layer_norm"]) if before else x
        x = x + tn.fc(act(tn.fc(h, lw["fc1"])), lw["fc2"])
        x = x if before else tn.layer_norm(x, lw["final_layer_norm"])
    if "final_layer_norm" in d:
        x = tn.layer_norm(x, d["final_layer_norm"])
    if "project_out" in d:
        x = tn.fc(x, d["project_out"])
    return net.finish(x, _head(w, embed))


FAMILIES = {"llama": llama, "qwen2": llama, "mistral": llama, "phi3": llama, "mixtral": llama, "gemma": gemma,
            "gpt2": gpt2, "gpt_neox": gpt_neox, "opt": opt}


def decoder(config, w, max_length=None):
    """The network of a transformers config's family (config.model_type) from the `*ForCausalLM` weights `w`."""
    if config.model_type not in FAMILIES:
        raise ValueError(f"no decoder network for model type '{config.model_type}' (trtnet.llm has "
                         f"{', '.join(sorted(FAMILIES))})")
    return FAMILIES[config.model_type](config, w, max_length)


# --- the PyTorch side: the module, taking the network's inputs in order ---------------------------------------------

def model_config(class_name, **kwargs):
    """The transformers config of a `*ForCausalLM` class name, from keyword arguments."""
    import transformers
    cls = getattr(transformers, class_name)
    return cls.config_class(**kwargs)


def causal_lm(class_name, **kwargs):
    """A fresh transformers `class_name` (e.g. "LlamaForCausalLM") from config keyword arguments, whose call with
    the network's inputs in order (input_ids, position_ids, past_key_0, past_value_0, ...) returns the network's
    outputs (logits, present_key_0, present_value_0, ...); its own calls, `generate` among them, are unchanged."""
    import transformers
    cls = _network_class(getattr(transformers, class_name))
    return cls(cls.config_class(**kwargs)).eval()


@functools.lru_cache(maxsize=None)
def _network_class(cls):
    @functools.wraps(cls.forward)
    def forward(self, *args, **kwargs):
        return _network_forward(self, cls, *args) if len(args) > 2 else cls.forward(self, *args, **kwargs)
    return type(cls.__name__, (cls,), {"forward": forward, "__module__": cls.__module__})


def _network_forward(module, cls, input_ids, position_ids, *pasts):
    from transformers import DynamicCache
    cache = DynamicCache()
    for i in range(len(pasts) // 2):
        cache.update(pasts[2 * i], pasts[2 * i + 1], i)
    out = cls.forward(module, input_ids=input_ids.long(), position_ids=position_ids.long(), cache=cache,
                      use_cache=True)
    return (out.logits, *(t for layer in cache.layers for t in (layer.keys, layer.values)))


def random_inputs(graph, env, rng):
    """Seeded inputs of a decoder network at sizes `env`: token ids below the vocabulary, the positions that
    follow P past entries, normal noise as the pasts."""
    ids = graph.inputs[0]
    n, s = graph.concrete(ids, env)
    p = env.get("P", 0)
    out = {ids.name: rng.integers(*ids.attrs["values"], (n, s)).astype(np.int64),
           "position_ids": np.broadcast_to(np.arange(p, p + s, dtype=np.int64), (n, s)).copy()}
    for x in graph.inputs[2:]:
        out[x.name] = rng.standard_normal(graph.concrete(x, env), dtype=np.float32)
    return out


# --- trtnet.port of a `*ForCausalLM`: a generation-ready model file ---------------------------------------------------

MODEL_FILE = '''"""{cls} of the config below as a trtnet decoder network (trtnet.llm), written by trtnet.port.

Inputs input_ids and position_ids (N, S), past_key_i/past_value_i (N, {kv_heads}, P, {head_dim}); outputs logits
(N, S, {vocab}) and present_key_i/present_value_i (N, {kv_heads}, P+S, {head_dim}).

    python -m trtnet.check {file} --generate 32    # greedy tokens against transformers' generate
"""
from trtnet import llm
from trtnet.zoo import register

CLASS = {cls!r}
CONFIG = {config}


def module():
    return llm.causal_lm(CLASS, **CONFIG)


@register({name!r}, ("S",), module, inputs=llm.random_inputs)
def network(w, shape=None):
    return llm.decoder(llm.model_config(CLASS, **CONFIG), w)
'''


def is_causal_lm(module):
    """Whether trtnet.port writes `module` with trtnet.llm: a transformers causal LM of a family it has."""
    name = type(module).__name__
    config = getattr(module, "config", None)
    return name.endswith(("ForCausalLM", "LMHeadModel")) and getattr(config, "model_type", None) in FAMILIES


@dataclass
class Ported:
    """What trtnet.port reports of a decoder's model file (as its PortResult)."""
    path: str
    weights: str
    lines: int
    seconds: float
    report: object = None
    method: str = "trtnet.llm"

    @property
    def ok(self):
        return self.report is None or self.report.ok


CHECK_AT = {"N": 2, "S": 5, "P": 3}   # a port's check: a step with both pasts and several new tokens


def port_causal_lm(module, class_name, kwargs, output=None, weights=None, check=False):
    """Write a model file registering `class_name`(**kwargs) with its trtnet.llm network (and the module's seeded
    weights beside it); the network is recorded, and checked where asked, first: a file that would not record or
    not match the module is never written."""
    start = time.perf_counter()
    name = os.path.splitext(os.path.basename(output or class_name))[0]
    net_module = causal_lm(class_name, **kwargs)
    net_module.load_state_dict(module.state_dict())
    randomize_trivial(net_module)
    arrays = {k: v.detach().float().numpy() for k, v in net_module.state_dict().items()}
    graph = decoder(net_module.config, WeightMap(arrays, "port"))
    past = graph.inputs[2]
    code = MODEL_FILE.format(cls=class_name, config=pprint.pformat(kwargs, width=110, sort_dicts=False), name=name,
                             file=os.path.basename(output or name + ".py"), kv_heads=past.shape[1],
                             head_dim=past.shape[3], vocab=net_module.config.vocab_size)
    result = Ported(output, None, code.count("\n"), 0.0)
    if check:   # before anything is written: a network that does not match its module leaves no file
        inputs = random_inputs(graph, CHECK_AT, np.random.default_rng(0))
        result.report = check_graph(graph, inputs, run_module(net_module, graph, inputs), 1e-4)
    if output and result.ok:
        write_atomic(output, code.encode())
        result.weights = weights or os.path.splitext(output)[0] + ".safetensors"
        (save_wts if result.weights.endswith(".wts") else save_safetensors)(arrays, result.weights)
    result.seconds = time.perf_counter() - start
    return result
