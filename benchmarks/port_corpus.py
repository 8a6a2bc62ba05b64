"""Port and check a corpus of PyTorch models: capture method, port seconds, generated lines, check result.

python benchmarks/port_corpus.py [SPEC ...] [--out DIR] [--jobs 2] [--timeout 600] [--smoke]

Each model runs in its own process (random init, seed 0), at a small input where the model allows one; the
check is trtnet.check at batch 2, fp32 tolerance 1e-4. `--smoke` ports torchvision's squeezenet1_0 alone.
"""
import argparse
import json
import os
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("specs", nargs="*")
    p.add_argument("--out", default=None)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=int, default=600)
    p.add_argument("--smoke", action="store_true", help="torchvision's squeezenet1_0 alone: quick")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.smoke:
        args.specs, args.jobs = ["torchvision:squeezenet1_0"], 1
    out_dir = args.out or tempfile.mkdtemp(prefix="port_corpus_")
    if args.child:
        print(json.dumps(run_one(args.specs[0], out_dir, args.size)), flush=True)
        return 0
    specs = args.specs or CORPUS
    print(f"{'model':34s} {'capture':8s} {'port s':>7s} {'lines':>6s} {'check':6s} {'max rel':>9s}", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda s: _print(run_child(s, out_dir, args.size, args.timeout)), specs))
    passed = sum(r["result"] == "PASS" for r in rows)
    print(f"\npass rate: {passed}/{len(rows)} ({100 * passed / max(len(rows), 1):.0f}%); files in {out_dir}")
    for r in rows:
        if r["result"] != "PASS":
            print(f"  {r['name']}: {r['reason']}")
    return 0


def _print(row):
    rel = "-" if row["rel"] is None else f"{row['rel']:.2e}"
    print(f"{row['name']:34s} {row['method']:8s} {row['seconds']:7.1f} {row['lines']:6d} {row['result']:6s} "
          f"{rel:>9s}" + (f"  {row['reason'][:150]}" if row["reason"] else ""), flush=True)
    return row


if __name__ == "__main__":
    sys.exit(main())
