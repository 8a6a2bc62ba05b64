"""Port and check a corpus of PyTorch models: capture method, port seconds, generated lines, check result.

python benchmarks/port_corpus.py [SPEC ...] [--out DIR] [--size 64]
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

CORPUS = [
    "timm:resnet26d", "timm:seresnet50", "timm:regnety_004", "timm:efficientnet_b0", "timm:mobilenetv4_conv_small",
    "timm:ghostnet_100", "timm:repvgg_a0", "timm:convnext_atto", "timm:vit_tiny_patch16_224",
    "timm:swin_tiny_patch4_window7_224", "timm:poolformer_s12", "timm:densenet121",
    "torchvision:regnet_x_400mf", "torchvision:squeezenet1_0", "torchvision:efficientnet_v2_s",
    "torchvision:vit_b_32", "torchvision:r3d_18", "torchvision:swin_t",
    'transformers:BertModel{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, '
    '"intermediate_size": 128, "vocab_size": 100}',
    'transformers:ViTModel{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, '
    '"intermediate_size": 128, "image_size": 32, "patch_size": 8}',
]
FIXED = {"timm:vit_tiny_patch16_224": 224, "timm:swin_tiny_patch4_window7_224": 224, "torchvision:vit_b_32": 224,
         "torchvision:swin_t": 224}


def inputs_for(spec, size):
    if spec.startswith("transformers:"):
        return None
    if spec == "torchvision:r3d_18":
        return {"x": ((1, 3, 4, size, size), "float32")}
    return {"x": ((1, 3, FIXED.get(spec, size), FIXED.get(spec, size)), "float32")}


def run_one(spec, out_dir, size):
    from trtnet.port import port_spec
    name = spec.split(":", 1)[1].split("{")[0]
    t0 = time.perf_counter()
    try:
        r = port_spec(spec, os.path.join(out_dir, f"{name}.py"), inputs_for(spec, size), check=True)
    except Exception as e:  # noqa: BLE001 (the corpus reports every failure and goes on)
        return dict(name=name, method="-", seconds=time.perf_counter() - t0, lines=0, result="FAIL", rel=None,
                    reason=(str(e).strip().splitlines() or [type(e).__name__])[0][:160] + _more(e))
    rel = max(m["rel"] for m in r.report.final.values())
    return dict(name=name, method=r.method, seconds=r.seconds, lines=r.lines, rel=rel,
                result="PASS" if r.ok else "FAIL", reason="" if r.ok else f"first bad layer {r.report.first_bad}")


def _more(e):
    lines = str(e).strip().splitlines()
    return f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("specs", nargs="*")
    p.add_argument("--out", default=None)
    p.add_argument("--size", type=int, default=64)
    args = p.parse_args()
    out_dir = args.out or tempfile.mkdtemp(prefix="port_corpus_")
    rows = []
    print(f"{'model':34s} {'capture':8s} {'port s':>7s} {'lines':>6s} {'check':6s} {'max rel':>9s}", flush=True)
    for spec in args.specs or CORPUS:
        row = run_one(spec, out_dir, args.size)
        rows.append(row)
        rel = "-" if row["rel"] is None else f"{row['rel']:.2e}"
        print(f"{row['name']:34s} {row['method']:8s} {row['seconds']:7.1f} {row['lines']:6d} {row['result']:6s} "
              f"{rel:>9s}", flush=True)
    passed = sum(r["result"] == "PASS" for r in rows)
    print(f"\npass rate: {passed}/{len(rows)} ({100 * passed / max(len(rows), 1):.0f}%); files in {out_dir}")
    for r in rows:
        if r["result"] != "PASS":
            print(f"  {r['name']}: {r['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
