"""Every script in benchmarks/ runs in its smoke mode (a fresh process, from an empty directory) and prints its
table: the header and rows whose figures parse as numbers. The build-time benchmark prints the README's table."""
import glob
import importlib.util
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
NUM = r"([0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?)"


def smoke(script, tmp_path, *args):
    """The script's stdout, run with --smoke from an empty directory; it must exit 0."""
    p = subprocess.run([sys.executable, os.path.join(BENCHMARKS, script), "--smoke", *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{script} --smoke failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def numbers(pattern, text):
    """[[float, ...]] of every line matching `pattern` (its groups)."""
    return [[float(v) for v in m.groups()] for m in re.finditer(pattern, text, re.M)]


def readme_build_table():
    """(header cells, rows of cells) of the README's table under '## Build time'."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("\n## Build time", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return cells[0], cells[2:]


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_has_a_smoke_test():
    scripts = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(BENCHMARKS, "*.py"))}
    missing = sorted(s for s in scripts if f"test_{s}_smoke" not in globals())
    assert scripts and not missing, f"benchmarks without a smoke test here: {missing}"


def test_readme_build_table_is_the_benchmarks():
    header, rows = readme_build_table()
    zoo_build = load_script("zoo_build")
    assert header == zoo_build.BUILD_COLUMNS
    assert [r[0] for r in rows] == sorted(zoo_build.TABLE)
    assert all(len(r) == len(header) for r in rows)


def test_zoo_build_smoke(tmp_path):
    out = smoke("zoo_build.py", tmp_path)
    header, _ = readme_build_table()
    assert "| " + " | ".join(header) + " |" in out.splitlines()
    row = next(ln for ln in out.splitlines() if ln.startswith("| squeezenet1_1 |"))
    cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
    assert cells[1] == "3x64x64"
    ours, theirs = [float(c) for c in cells[2:7]], [float(c) for c in cells[7:11]]
    assert abs(sum(ours[:4]) - ours[4]) <= 0.03 and abs(sum(theirs[:3]) - theirs[3]) <= 0.03
    sizes, layers = [[int(v) for v in c.split(" / ")] for c in cells[11:13]]
    assert min(layers) > 0 and len(sizes) == 2


def test_timeline_smoke(tmp_path):
    out = smoke("timeline.py", tmp_path)
    runs = numbers(rf"^trtnet\.build squeezenet1_1 with(?:out)? verification: {NUM} s wall \({NUM} s CPU\), "
                   rf"peak RSS {NUM} MiB", out)
    parts = numbers(rf"^  \S.*?\s+{NUM} s$", out)
    assert len(runs) == 2 and all(wall > 0 and peak > 0 for wall, _, peak in runs)
    assert len(parts) >= 2 * 4, out


def test_interp_speed_smoke(tmp_path):
    out = smoke("interp_speed.py", tmp_path)
    assert out.startswith("resnet18 batch 1 64x64")
    [[interp]], [[torch_s]] = numbers(rf"^interpreter:\s+{NUM} s", out), numbers(rf"^pytorch \(cpu\):\s+{NUM} s", out)
    [[err]] = numbers(rf"^max \|diff\| / max \|output\|: {NUM}", out)
    assert interp > 0 and torch_s > 0 and err < 1e-4   # the interpreter agrees with PyTorch


def test_port_corpus_smoke(tmp_path):
    out = smoke("port_corpus.py", tmp_path, "--out", str(tmp_path / "ported"))
    assert re.search(r"^model\s+capture\s+port s\s+lines\s+check\s+max rel$", out, re.M)
    [[seconds, lines, rel]] = numbers(rf"^squeezenet1_0\s+\w+\s+{NUM}\s+{NUM}\s+PASS\s+{NUM}$", out)
    assert lines > 0 and rel <= 1e-4 and "pass rate: 1/1" in out


def test_quantize_smoke(tmp_path):
    out = smoke("quantize.py", tmp_path)
    assert "| model | input | precision | method | calib s | SQNR dB | top-1 agree |" in out
    rows = numbers(rf"^\| squeezenet1_1 \| 3x32x32 \| \S+ \| \S+ \| {NUM} \| (-?[0-9.]+|inf) \| {NUM}% \|$", out)
    assert len(rows) == 2 and all(0 <= agree <= 100 for _, _, agree in rows)
    assert "| squeezenet1_1 | SM80 |" in out and re.search(r"^\| fp32 \| builds \|$", out, re.M)


def test_fuzz_weights_smoke(tmp_path):
    out = smoke("fuzz_weights.py", tmp_path)
    assert re.search(r"^kind\s+executions\s+per s\s+findings$", out, re.M)
    rows = numbers(rf"^(?:safetensors|pth|wts|mutated)\s+{NUM}\s+{NUM}\s+{NUM}$", out)
    assert len(rows) == 4 and sum(r[0] for r in rows) > 0


def test_wts_load_smoke(tmp_path):
    out = smoke("wts_load.py", tmp_path)
    assert re.search(r"^file: \d+ tensors, 200,000 floats", out, re.M)
    rows = numbers(rf"^(?:save_wts|load_weights|bytes\.fromhex / line):\s+{NUM} s\s+{NUM} MB/s", out)
    assert len(rows) == 3 and all(mbps > 0 for _, mbps in rows)
