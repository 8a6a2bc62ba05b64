"""Port and check a corpus of PyTorch models: capture method, port seconds, generated lines, check result.

python benchmarks/port_corpus.py [SPEC ...] [--out DIR] [--jobs 2] [--timeout 600] [--smoke]
python benchmarks/port_corpus.py --transformers [--only NAME]
python benchmarks/port_corpus.py --detection [--only NAME]

Each model runs in its own process (random init, seed 0), at a small input where the model allows one; the
check is trtnet.check at batch 2, fp32 tolerance 1e-4. `--smoke` ports torchvision's squeezenet1_0 alone.
`--transformers` runs the command lines a user types: `python -m trtnet.port SPEC -o FILE.py` at a dynamic
batch and sequence, then `python -m trtnet.check FILE.py` at both ends of each range (decoders: `--generate 32`).
`--detection` does the same for every Ultralytics family x task the installed package ships (trtnet.port.ultralytics)
and torchvision's detectors.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

TIMM = ("resnet26d seresnet50 resnext26ts skresnet18 sebotnet33ts_256 lambda_resnet26t regnety_004 efficientnet_b0 "
        "efficientnetv2_rw_t mixnet_s mobilenetv4_conv_small ghostnet_100 repvgg_a0 convnext_atto convmixer_768_32 "
        "resmlp_12_224 vit_tiny_patch16_224 beit_base_patch16_224 swin_tiny_patch4_window7_224 cait_xxs24_224 "
        "crossvit_tiny_240 mobilevit_xxs efficientformer_l1 poolformer_s12 fastvit_t8 dla34 res2net50_26w_4s "
        "cspdarknet53 densenet121 inception_resnet_v2 dm_nfnet_f0 hardcorenas_a tinynet_a fbnetv3_b tresnet_m "
        "nest_tiny tnt_s_patch16_224 visformer_tiny xcit_nano_12_p16_224 coatnet_nano_rw_224 efficientvit_b0 "
        "tiny_vit_5m_224 davit_tiny hiera_tiny_224 repvit_m1 mambaout_femto").split()
IMG_SIZE = {"sebotnet33ts_256", "resmlp_12_224", "vit_tiny_patch16_224", "beit_base_patch16_224",
            "swin_tiny_patch4_window7_224", "cait_xxs24_224", "nest_tiny", "tnt_s_patch16_224", "visformer_tiny",
            "coatnet_nano_rw_224", "hiera_tiny_224"}     # fixed-size models made at 64x64 through img_size
SIZE = {"efficientformer_l1": 224, "inception_resnet_v2": 96, "torchvision:maxvit_t": 224}

TEXT = '"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128'
HF = {
    "BertModel": (f'{{{TEXT}, "vocab_size": 100}}', None),
    "GPT2LMHeadModel": ('{"n_embd": 64, "n_layer": 2, "n_head": 2, "vocab_size": 100, "n_positions": 64, "use_cache": false}', None),
    "LlamaForCausalLM": (f'{{{TEXT}, "num_key_value_heads": 1, "vocab_size": 100, "use_cache": false}}', None),
    "ViTModel": (f'{{{TEXT}, "image_size": 32, "patch_size": 8}}', {"pixel_values": ((1, 3, 32, 32), "float32")}),
    "CLIPVisionModel": (f'{{{TEXT}, "image_size": 32, "patch_size": 8}}',
                        {"pixel_values": ((1, 3, 32, 32), "float32")}),
    "WhisperEncoder": ('{"d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 128, '
                       '"num_mel_bins": 16, "max_source_positions": 20}',
                       {"input_features": ((1, 16, 40), "float32")}),
    "SegformerForSemanticSegmentation": (
        '{"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 2, 1], "num_attention_heads": [1, 1, 2, 2], '
        '"decoder_hidden_size": 64, "num_labels": 4}', {"pixel_values": ((1, 3, 64, 64), "float32")}),
    "ConvNextModel": ('{"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 2, 1]}',
                      {"pixel_values": ((1, 3, 64, 64), "float32")}),
}
CORPUS = ([f'timm:{n}{{"img_size": 64}}' if n in IMG_SIZE else f"timm:{n}" for n in TIMM] +
          [f"torchvision:{n}" for n in ("swin_t", "maxvit_t", "efficientnet_v2_s", "regnet_x_400mf")] +
          ['torchvision:vit_b_32{"image_size": 64}', "torchvision:squeezenet1_0", "torchvision:r3d_18",
           'torchvision:ssdlite320_mobilenet_v3_large{"weights_backbone": null}'] +
          [f"transformers:{k}{cfg}" for k, (cfg, _) in HF.items()])


def inputs_for(spec, size):
    name = spec.split(":", 1)[1].split("{")[0]
    if spec.startswith("transformers:"):
        return HF[name][1]
    if name == "r3d_18":
        return {"x": ((1, 3, 4, size, size), "float32")}
    s = SIZE.get(name, SIZE.get(spec, size))
    return {"x": ((1, 3, s, s), "float32")}


def run_one(spec, out_dir, size):
    """One model's row (in this process)."""
    from trtnet.port import port_spec
    name = spec.split(":", 1)[1].split("{")[0]
    t0 = time.perf_counter()
    try:
        r = port_spec(spec, os.path.join(out_dir, f"{name}.py"), inputs_for(spec, size), check=True)
    except Exception as e:  # noqa: BLE001 (the corpus reports every failure and goes on)
        return dict(name=name, method="-", seconds=time.perf_counter() - t0, lines=0, result="FAIL", rel=None,
                    reason=f"{type(e).__name__}: " + (str(e).strip().splitlines() or [""])[0][:200] + _more(e))
    rel = max(m["rel"] for m in r.report.final.values())
    return dict(name=name, method=r.method, seconds=r.seconds, lines=r.lines, rel=rel,
                result="PASS" if r.ok else "FAIL", reason="" if r.ok else f"check: first bad layer {r.report.first_bad}")


def _more(e):
    lines = [ln.strip() for ln in str(e).strip().splitlines()[1:]]
    return (" | " + " | ".join(lines[:3])[:300]) if lines else ""


def run_child(spec, out_dir, size, timeout):
    name = spec.split(":", 1)[1].split("{")[0]
    cmd = [sys.executable, os.path.abspath(__file__), "--child", spec, "--out", out_dir, "--size", str(size)]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return dict(name=name, method="-", seconds=timeout, lines=0, result="FAIL", rel=None,
                    reason=f"timeout after {timeout} s")
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if rows:
        return json.loads(rows[-1])
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1][:200]
    return dict(name=name, method="-", seconds=time.perf_counter() - t0, lines=0, result="FAIL", rel=None,
                reason=f"crashed (exit {p.returncode}): {tail}")


ENC = '"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128'
TOKENS = ("input_ids:1x4:int64", "input_ids:0,1", None)   # ranges N 1..4 (check), 1..128 tokens (port)
ENCODERS = {  # name: (spec, --input, --dynamic, --shapes where not the ranges): random weights, nothing downloaded
    "BERT": (f'transformers:BertModel{{{ENC}, "vocab_size": 100}}', *TOKENS),
    "DistilBERT": ('transformers:DistilBertModel{"vocab_size": 100, "dim": 64, "n_layers": 2, "n_heads": 4, '
                   '"hidden_dim": 128}', *TOKENS),
    "RoBERTa": (f'transformers:RobertaModel{{{ENC}, "vocab_size": 100}}', *TOKENS),
    "ALBERT": (f'transformers:AlbertModel{{{ENC}, "embedding_size": 32, "vocab_size": 100}}', *TOKENS),
    "ELECTRA": (f'transformers:ElectraModel{{{ENC}, "embedding_size": 32, "vocab_size": 100}}', *TOKENS),
    "T5 encoder": ('transformers:T5EncoderModel{"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, '
                   '"num_heads": 4, "vocab_size": 100}', *TOKENS),
    "BART encoder": ('transformers:BartEncoder{"d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 4, '
                     '"encoder_ffn_dim": 128, "vocab_size": 100}', *TOKENS),
    "CLIP text": (f'transformers:CLIPTextModel{{{ENC}, "vocab_size": 100, "max_position_embeddings": 128}}',
                  *TOKENS),
    "Wav2Vec2": (f'transformers:Wav2Vec2Model{{{ENC}, "conv_dim": [32, 32], "conv_kernel": [10, 3], '
                 '"conv_stride": [5, 2], "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}',
                 "input_values:1x800", "input_values:0,1", "input_values:1x400,2x800,4x1600"),
    "Whisper encoder": ('transformers:WhisperEncoder{"d_model": 64, "encoder_layers": 2, '
                        '"encoder_attention_heads": 4, "encoder_ffn_dim": 128, "num_mel_bins": 16, '
                        '"max_source_positions": 20}', "input_features:1x16x40", "input_features:0", None),
    "ViT": (f'transformers:ViTModel{{{ENC}, "image_size": 32, "patch_size": 8}}', "pixel_values:1x3x32x32",
            "pixel_values:0", None),   # Whisper's length and ViT's image size are fixed by the model
}
DEC = ('"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, '
       '"vocab_size": 256')
DECODERS = {  # name: spec, checked with --generate 32 against transformers' greedy generate
    "GPT-2": 'transformers:GPT2LMHeadModel{"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 256}',
    "Llama": f'transformers:LlamaForCausalLM{{{DEC}, "num_key_value_heads": 2}}',
    "Qwen2": f'transformers:Qwen2ForCausalLM{{{DEC}, "num_key_value_heads": 2}}',
    "Mistral (sliding window)": f'transformers:MistralForCausalLM{{{DEC}, "num_key_value_heads": 2, '
                                '"sliding_window": 16}',
    "Phi-3": f'transformers:Phi3ForCausalLM{{{DEC}, "num_key_value_heads": 2, "pad_token_id": 0}}',
    "Gemma": f'transformers:GemmaForCausalLM{{{DEC}, "num_key_value_heads": 1, "head_dim": 16}}',
    "GPT-NeoX": f'transformers:GPTNeoXForCausalLM{{{DEC}}}',
    "OPT": ('transformers:OPTForCausalLM{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, '
            '"ffn_dim": 128, "vocab_size": 256, "word_embed_proj_dim": 64}'),
    "Mixtral": f'transformers:MixtralForCausalLM{{{DEC}, "num_key_value_heads": 2, "num_local_experts": 4, '
               '"num_experts_per_tok": 2}',
}


def run_cli(name, spec, out_dir, port_args, check_args, timeout):
    """A row from the command lines a user types: trtnet.port SPEC -o FILE.py, then trtnet.check FILE.py."""
    path = os.path.join(out_dir, re.sub(r"\W+", "_", name).strip("_").lower() + ".py")
    row = dict(name=name, method="-", seconds=0.0, lines=0, result="FAIL", rel=None, reason="")
    t0 = time.perf_counter()
    port = _command(["-m", "trtnet.port", spec, "-o", path, "--no-check", *port_args], timeout)
    row["seconds"] = time.perf_counter() - t0
    if port.returncode != 0:
        row["reason"] = "port: " + _last_error(port)
        return row
    found = re.search(r"captured with ([\w.]+), ([\d.]+) s", port.stdout)
    row["method"] = found.group(1) if found else "-"
    if found:     # the port's own time, without starting Python and importing the libraries
        row["seconds"] = float(found.group(2))
    with open(path) as f:
        row["lines"] = sum(1 for _ in f)
    check = _command(["-m", "trtnet.check", path, *check_args], timeout)
    errors = [float(v) for v in re.findall(r"(?:relative|logits' max abs) error (\S+?)[,;)]?\s", check.stdout)
              if _number(v)]
    row["rel"] = max(errors) if errors else None
    row["result"] = "PASS" if check.returncode == 0 else "FAIL"
    row["reason"] = "" if check.returncode == 0 else "check: " + _last_error(check)
    return row


def _command(args, timeout):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env=env)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"error: timeout after {timeout} s")


def _number(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def _last_error(p):
    lines = [ln for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or "FAIL" in ln]
    return ((errors or lines or [f"exit {p.returncode}"])[-1]).strip()[:300]


def transformers_rows(out_dir, timeout):
    """[(row name, job)]: encoders at dynamic batch and sequence, checked at both ends; decoders generating 32
    tokens."""
    rows = []
    for name, (spec, example, dynamic, shapes) in ENCODERS.items():
        check = ["--shapes", shapes] if shapes else []
        rows.append((name, spec, ["--input", example, "--dynamic", dynamic], check))
    rows += [(name, spec, [], ["--generate", "32"]) for name, spec in DECODERS.items()]
    return [(r[0], lambda r=r: run_cli(*r[:2], out_dir, *r[2:], timeout)) for r in rows]


# torchvision's detectors: (builder, example size, dynamic axes). One-stage: anchors and decoding in the network;
# two-stage: the first network (backbone, FPN, RPN head). SSD300's VGG pools in ceil mode: its size is fixed, as
# its transform's is.
TORCHVISION = {"RetinaNet": ("retinanet_resnet50_fpn", 160, "0,2,3"), "FCOS": ("fcos_resnet50_fpn", 160, "0,2,3"),
               "SSD300": ("ssd300_vgg16", 300, "0"), "SSDlite": ("ssdlite320_mobilenet_v3_large", 160, "0,2,3"),
               "Faster R-CNN": ("fasterrcnn_resnet50_fpn", 160, "0,2,3"),
               "Mask R-CNN": ("maskrcnn_resnet50_fpn", 160, "0,2,3"),
               "Keypoint R-CNN": ("keypointrcnn_resnet50_fpn", 160, "0,2,3")}


def detection_rows(out_dir, timeout):
    """[(row name, job)]: every Ultralytics family x task the package ships at its smallest size, ported at a
    dynamic batch and image size and checked at 2x3x160x160, and torchvision's detectors."""
    from trtnet.port.ultralytics import corpus
    port = ["--input", "images:1x3x160x160", "--dynamic", "images:0,2,3"]
    rows = [(name, lambda n=name, c=cfg: run_cli(n, f'trtnet.port.ultralytics:model{{"cfg": "{c}"}}', out_dir,
                                                  port, ["--shapes", "images:2x3x160x160"], timeout))
            for name, cfg in corpus()]
    return rows + [(f"torchvision {row}", lambda r=f"torchvision {row}", b=b, s=s, d=d: run_cli(
        r, f"torchvision:{b}", out_dir, ["--input", f"x:1x3x{s}x{s}", "--dynamic", f"x:{d}"],
        ["--shapes", f"x:2x3x{s}x{s}"], timeout)) for row, (b, s, d) in TORCHVISION.items()]


CORPORA = {"transformers": transformers_rows,   # --NAME: [(row name, job)] of (out_dir, timeout)
           "detection": detection_rows}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("specs", nargs="*")
    p.add_argument("--out", default=None)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=int, default=600)
    p.add_argument("--smoke", action="store_true", help="torchvision's squeezenet1_0 alone: quick")
    for name in CORPORA:
        p.add_argument(f"--{name}", action="store_true", help=f"the {name} corpus instead of timm/torchvision")
    p.add_argument("--only", help="with a named corpus: the rows whose names contain this text")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.smoke:
        args.specs, args.jobs = ["torchvision:squeezenet1_0"], 1
    out_dir = args.out or tempfile.mkdtemp(prefix="port_corpus_")
    os.makedirs(out_dir, exist_ok=True)
    if args.child:
        print(json.dumps(run_one(args.specs[0], out_dir, args.size)), flush=True)
        return 0
    named = [n for n in CORPORA if getattr(args, n)]
    if named:
        jobs = [job for n in named for row, job in CORPORA[n](out_dir, args.timeout)
                if (args.only or "").lower() in row.lower()]
    else:
        jobs = [lambda s=s: run_child(s, out_dir, args.size, args.timeout) for s in args.specs or CORPUS]
    print(f"{'model':34s} {'capture':10s} {'port s':>7s} {'lines':>6s} {'check':6s} {'max rel':>9s}", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda job: _print(job()), jobs))
    passed = sum(r["result"] == "PASS" for r in rows)
    print(f"\npass rate: {passed}/{len(rows)} ({100 * passed / max(len(rows), 1):.0f}%); files in {out_dir}")
    for r in rows:
        if r["result"] != "PASS":
            print(f"  {r['name']}: {r['reason']}")
    return 0


def _print(row):
    rel = "-" if row["rel"] is None else f"{row['rel']:.2e}"
    print(f"{row['name']:34s} {row['method']:10s} {row['seconds']:7.1f} {row['lines']:6d} {row['result']:6s} "
          f"{rel:>9s}" + (f"  {row['reason'][:150]}" if row["reason"] else ""), flush=True)
    return row


if __name__ == "__main__":
    sys.exit(main())
