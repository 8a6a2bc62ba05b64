"""Decoder LLMs (trtnet.llm) against transformers: each family's logits and presents, 32 greedy tokens equal to
transformers' own generate through the interpreter, the CPU builder, sampling, `trtnet.check --generate` and the
port of a `*ForCausalLM`. Small random configs (hidden 64, 2 layers, 4 heads, 2 key/value heads where the family
groups them, vocabulary 256), seeded, offline."""
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import trtnet as tn  # noqa: E402
from trtnet import llm, zoo  # noqa: E402
from trtnet.check.module import run_captured  # noqa: E402
from trtnet.check.report import check_graph  # noqa: E402
from trtnet.generate import choose, compare_with_module, generate  # noqa: E402

BASE = dict(vocab_size=256, num_hidden_layers=2, pad_token_id=None, bos_token_id=None, eos_token_id=None)
GQA = dict(BASE, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2)
FAMILIES = {
    "llama": ("LlamaForCausalLM", GQA),
    "qwen2": ("Qwen2ForCausalLM", GQA),
    "mistral": ("MistralForCausalLM", dict(GQA, sliding_window=5)),   # shorter than the prompt: the window acts
    "phi3": ("Phi3ForCausalLM", GQA),
    "gemma": ("GemmaForCausalLM", dict(GQA, head_dim=16, tie_word_embeddings=False)),   # GPT-2's head is tied
    "gpt2": ("GPT2LMHeadModel", dict(BASE, n_embd=64, n_head=4)),
    "gpt_neox": ("GPTNeoXForCausalLM", dict(BASE, hidden_size=64, intermediate_size=128, num_attention_heads=4)),
    "opt": ("OPTForCausalLM", dict(BASE, hidden_size=64, ffn_dim=128, num_attention_heads=4, word_embed_proj_dim=64,
                                   tie_word_embeddings=False)),
    "mixtral": ("MixtralForCausalLM", dict(GQA, num_local_experts=4, num_experts_per_tok=2)),
}
VARIANTS = {   # configurations the families' defaults leave out
    "llama3_rope": ("LlamaForCausalLM", dict(GQA, rope_parameters={
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 16})),
    "phi3_partial_rotary": ("Phi3ForCausalLM", dict(GQA, partial_rotary_factor=0.5)),
    "gpt_neox_sequential": ("GPTNeoXForCausalLM", dict(FAMILIES["gpt_neox"][1], use_parallel_residual=False)),
    "opt_post_norm_projected": ("OPTForCausalLM", dict(FAMILIES["opt"][1], word_embed_proj_dim=32,
                                                       do_layer_norm_before=False)),
}
LOGITS_TOL = 1e-4   # fp32, absolute, on logits of order 1


@pytest.fixture(autouse=True)
def one_thread():
    """Decoding steps are tiny: on a shared machine, torch's thread hand-offs would dominate their time."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def family(name, max_length=64):
    """(the transformers module with seeded, non-trivial weights; the trtnet network of its weights). Matrices
    are drawn at unit gain (std 1/sqrt(fan-in)): GPT-2's, OPT's and Gemma's small initialisations would repeat
    one token, and equal greedy tokens would then say little."""
    cls, kwargs = {**FAMILIES, **VARIANTS}[name]
    torch.manual_seed(0)
    module = llm.causal_lm(cls, **kwargs)
    zoo.randomize_trivial(module)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() >= 2:
                p.normal_(0, p.shape[-1] ** -0.5)
    w = tn.WeightMap({k: v.detach().numpy() for k, v in module.state_dict().items()})
    return module, llm.decoder(module.config, w, max_length)


@pytest.mark.parametrize("name", [*FAMILIES, *(pytest.param(v, marks=pytest.mark.slow) for v in VARIANTS)])
def test_logits_and_presents_match_transformers(name):
    """The prompt (P = 0) and steps after pasts (crossing Mistral's window; beyond Llama 3's original length)."""
    module, graph = family(name)
    rng = np.random.default_rng(0)
    for env in ({"N": 1, "S": 6, "P": 0}, {"N": 2, "S": 3, "P": 4}, {"N": 1, "S": 2, "P": 30}):
        inputs = llm.random_inputs(graph, env, rng)
        expected, submodules = run_captured(module, graph, inputs)   # and each layer named after a submodule
        assert expected["logits"].shape == (env["N"], env["S"], 256)
        assert expected["present_key_1"].shape[2] == env["P"] + env["S"]
        report = check_graph(graph, inputs, expected, 1e-4, module_values=submodules)
        assert report.ok, report.summary()
        assert sum(r.mod is not None for r in report.rows) >= 8   # norms, projections, the embedding compared
        assert report.final["logits"]["max_abs"] < LOGITS_TOL


def test_a_tied_head_comes_from_the_embedding_when_the_file_holds_it_once():
    module, _ = family("gpt2")
    assert module.lm_head.weight is module.transformer.wte.weight
    w = tn.WeightMap({k: v.detach().numpy() for k, v in module.state_dict().items() if k != "lm_head.weight"})
    graph = llm.decoder(module.config, w)
    inputs = llm.random_inputs(graph, {"N": 1, "S": 4, "P": 2}, np.random.default_rng(0))
    expected, _ = run_captured(module, graph, inputs, capture_layers=False)
    assert check_graph(graph, inputs, expected, 1e-4).final["logits"]["max_abs"] < LOGITS_TOL


@pytest.mark.parametrize("name", FAMILIES)
def test_builds_on_the_cpu(name):
    """TensorRT's builder takes every family's fp32 network (attention, rotary layers) with P from 0."""
    from trtnet.engine import build_engine, create_network
    _, graph = family(name)
    held = create_network(graph)   # (builder, network, emission): the network's weights stay alive with it
    kinds = {held[1].get_layer(i).type.name for i in range(held[1].num_layers)}
    assert ("ROTARY_EMBEDDING" in kinds) == (name not in ("gpt2", "opt"))
    plan, info = build_engine(graph, progress=False)
    assert len(plan) > 0 and info.profiles[0]["P"][0] == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llama", "mixtral"])
def test_fp16_network_builds_and_checks(name):
    """In half precision (TensorRT's fused attention where it has one): built, and within fp16's tolerance."""
    from trtnet.check.report import FP16_TOL
    from trtnet.engine import build_engine
    module, graph = family(name)
    assert build_engine(graph, progress=False, half="fp16")[1].precision == "fp16"
    inputs = llm.random_inputs(graph, {"N": 2, "S": 3, "P": 4}, np.random.default_rng(0))
    expected, _ = run_captured(module, graph, inputs, capture_layers=False)
    report = check_graph(graph, inputs, expected, FP16_TOL, half="fp16")
    assert report.ok, report.summary()


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_32_greedy_tokens_equal_transformers_generate(name):
    module, graph = family(name)
    prompt = np.random.default_rng(1).integers(0, 256, (2, 6))
    result = generate(graph, prompt, 32)
    assert result.ran.startswith("trtnet.check's interpreter")
    assert result.tokens.shape == (2, 38) and (result.tokens[:, :6] == prompt).all()
    comparison = compare_with_module(result, module, prompt)
    assert comparison.ok, comparison.line


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    logits = np.random.default_rng(0).standard_normal((3, 50)).astype(np.float32)
    draw = [choose(logits, True, 0.7, None, np.random.default_rng(5)) for _ in range(2)]
    assert (draw[0] == draw[1]).all()
    assert (choose(logits, True, 1.0, 1, np.random.default_rng(5)) == logits.argmax(-1)).all()
    many = np.array([choose(logits[:1], True, 1.0, 3, np.random.default_rng(s))[0] for s in range(200)])
    assert set(many) <= set(np.argsort(logits[0])[-3:]) and len(set(many)) == 3   # only, and all of, the top 3
    _, graph = family("llama")
    prompt = np.array([[3, 1, 4]])
    a, b = (generate(graph, prompt, 3, do_sample=True, temperature=0.8, top_k=5, seed=9) for _ in range(2))
    assert (a.tokens == b.tokens).all() and len(a.logits) == 3


def test_generate_refuses_a_network_of_another_form():
    g = tn.Graph("mlp")
    g.output(tn.relu(g.input("x", (4,))), "y")
    with pytest.raises(ValueError, match="not a decoder network.*inputs are x"):
        generate(g, np.zeros((1, 2), np.int64), 1)


def test_generate_on_an_engine_feeds_presents_back(monkeypatch):
    """The engine path, on a stand-in TensorRT whose engine is the transformers module itself: the tokens are
    those of the module's own generate, so the pasts went back in as the presents came out."""
    from gpu_standin import CpuCuda, StandInTrt
    from trtnet.runtime import Engine
    module, graph = family("gpt2")
    names = [x.name for x in graph.inputs]
    kinds = {"int64": "INT64", "float32": "FLOAT"}
    dims = lambda x: tuple(d if isinstance(d, int) else -1 for d in x.shape)   # noqa: E731
    ins = {x.name: (kinds[x.dtype], dims(x)) for x in graph.inputs}
    outs = {x.name: ("FLOAT", dims(x)) for x in graph.outputs}
    lo_hi = lambda x, p: tuple(d if isinstance(d, int) else p for d in x.shape)   # noqa: E731
    profile = {x.name: (lo_hi(x, 0 if "past" in x.name else 1), lo_hi(x, 8), lo_hi(x, 64)) for x in graph.inputs}

    def fn(**arrays):
        if arrays["input_ids"].device.type == "meta":   # the stand-in asks for the output shapes alone
            env = {"N": arrays["input_ids"].shape[0], "S": arrays["input_ids"].shape[1],
                   "P": arrays["past_key_0"].shape[2]}
            return {x.name: torch.empty(graph.concrete(x, env), device="meta") for x in graph.outputs}
        with torch.no_grad():
            y = module(*(arrays[n] for n in names))
        return dict(zip(outs, y))

    engine = Engine(b"", trt=StandInTrt(ins, outs, [profile], fn), cuda=CpuCuda(0), runtime_cache=False)
    prompt = np.random.default_rng(2).integers(0, 256, (2, 5))
    result = generate(engine, prompt, 6)
    assert result.ran == "a TensorRT engine on GPU 0"
    assert compare_with_module(result, module, prompt).ok


MODEL_FILE = '''
from trtnet import llm
from trtnet.weights import WeightMap
from trtnet.zoo import register

CLASS, CONFIG = {cls!r}, {config!r}


def module():
    return llm.causal_lm(CLASS, **CONFIG)


@register({name!r}, ("S",), module, inputs=llm.random_inputs)
def network(w, shape=None):
    arrays = {{k: w[k] for k in w}}
    for k in {planted!r}:   # a wrong weight in the network only: the module keeps the file's
        arrays[k] = arrays[k] * 1.5
    return llm.decoder(llm.model_config(CLASS, **CONFIG), WeightMap(arrays, w.source))
'''


def _model_file(tmp_path, name, planted=()):
    cls, config = FAMILIES[name]
    path = tmp_path / f"{name}_{len(planted)}.py"
    path.write_text(MODEL_FILE.format(cls=cls, config=config, planted=list(planted), name=path.stem))
    module, _ = family(name)
    tn.save_safetensors({k: v.detach().numpy() for k, v in module.state_dict().items()},
                        str(tmp_path / f"{path.stem}.safetensors"))
    return str(path)


@pytest.mark.slow
def test_check_generate_exit_codes(tmp_path, capsys):
    from trtnet.check.__main__ import main
    assert main([_model_file(tmp_path, "qwen2"), "--generate", "6", "-q"]) == 0
    out = capsys.readouterr().out
    assert "6 greedy tokens equal to transformers' generate" in out and "tokens/s" in out
    bad = _model_file(tmp_path, "qwen2", ["model.layers.1.mlp.down_proj.weight", "lm_head.weight"])
    assert main([bad, "--generate", "6", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    found = re.fullmatch(r"error: step (\d+): the network chose token (\d+) \(sequence [01]\), transformers' "
                         r"generate token (\d+); logits' max abs error (\S+) at this step", err[0])
    assert len(err) == 1 and found, err
    assert found.group(2) != found.group(3) and float(found.group(4)) > 1e-2
    assert main([_model_file(tmp_path, "llama"), "--generate", "0"]) == 1
    assert "--generate" in capsys.readouterr().err
    other = tmp_path / "mlp.py"
    other.write_text("import torch\nimport trtnet as tn\nfrom trtnet.zoo import register\n\n\n"
                     "@register('mlp', (4,), lambda: torch.nn.Linear(4, 4))\ndef mlp(w, shape=None):\n"
                     "    g = tn.Graph('mlp')\n    g.output(tn.fc(g.input('x', (4,)), w), 'y')\n    return g\n")
    tn.save_safetensors({"weight": np.eye(4, dtype=np.float32), "bias": np.zeros(4, np.float32)},
                        str(tmp_path / "mlp.safetensors"))
    assert main([str(other), "--generate", "2", "-q"]) == 1
    assert "error: 'mlp' is not a decoder network of trtnet.llm's form: its inputs are x, expected input_ids" in \
        capsys.readouterr().err


@pytest.mark.slow
def test_port_of_a_causal_lm_writes_a_generation_ready_file(tmp_path, capsys):
    from trtnet.check.__main__ import main as check
    from trtnet.port.__main__ import main as port
    out = tmp_path / "phi.py"
    config = '{"vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, ' \
             '"num_attention_heads": 4, "num_key_value_heads": 2, "pad_token_id": 0}'
    assert port([f"transformers:Phi3ForCausalLM{config}", "-o", str(out)]) == 0
    assert "PASS" in capsys.readouterr().out and (tmp_path / "phi.safetensors").exists()
    assert "llm.decoder(" in out.read_text()
    assert check([str(out), "--generate", "4", "-q"]) == 0
    assert "4 greedy tokens equal" in capsys.readouterr().out
