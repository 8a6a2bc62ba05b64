"""A longer fuzzing campaign against load_weights than the test suite's bounded one.

    python benchmarks/fuzz_weights.py [--seconds 120] [--smoke]

Draws from the strategies of tests/test_weights_fuzz.py (safetensors headers, .pth state dicts, .wts lines,
byte mutations of valid files) until the time is spent, and prints the executions and findings per kind, then
each finding: a distinct exception other than WeightFileError (failed time or size bounds included) with one
example. `--smoke` fuzzes for 3 seconds.
"""
import argparse
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from hypothesis import Phase, Verbosity, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
import test_weights_fuzz as F  # noqa: E402

KINDS = {"safetensors": (F.safetensors_files(), F.test_safetensors_by_structure),
         "pth": (F.state_dicts(), F.test_pth_by_structure),
         "wts": (st.tuples(F.wts_texts(), st.integers(1, 24)), F.test_wts_by_structure),
         "mutated": (F.mutated(), F.test_mutated_files)}


class _TimeUp(Exception):
    pass


def campaign(seconds):
    """(executions by kind, {(kind, exception type, first line): example}, seconds spent) after `seconds` of
    fuzzing, counted from the first execution (Hypothesis's start-up is not fuzzing)."""
    runs, findings, start = Counter(), {}, []
    cases = st.one_of(*(st.tuples(st.just(kind), strategy) for kind, (strategy, _) in KINDS.items()))

    @settings(max_examples=10 ** 9, deadline=None, database=None, phases=[Phase.generate],
              verbosity=Verbosity.quiet)
    @given(cases)
    def run(case):
        if not start:
            start.append(time.monotonic())
        if time.monotonic() > start[0] + seconds:
            raise _TimeUp
        kind, args = case
        runs[kind] += 1
        body = KINDS[kind][1].hypothesis.inner_test
        try:
            body(*args) if kind == "wts" else body(args)
        except Exception as e:
            line = (str(e).strip().splitlines() or [""])[0][:160]
            findings.setdefault((kind, type(e).__name__, line), repr(args)[:300])

    try:
        run()
    except _TimeUp:
        pass
    return runs, findings, time.monotonic() - start[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120, help="time budget (default 120)")
    parser.add_argument("--smoke", action="store_true", help="3 seconds: quick")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # torch's notes on the quantized and sparse tensors it is given
    runs, findings, took = campaign(3 if args.smoke else args.seconds)
    print(f"{'kind':12s} {'executions':>10s} {'per s':>8s} {'findings':>8s}")
    for kind in KINDS:
        found = sum(k == kind for k, _, _ in findings)
        print(f"{kind:12s} {runs[kind]:10d} {runs[kind] / took:8.1f} {found:8d}")
    print(f"{sum(runs.values())} executions in {took:.0f} s; {len(findings)} findings" + (":" if findings else ""))
    for (kind, name, line), example in sorted(findings.items()):
        print(f"  [{kind}] {name}: {line}\n      e.g. {example}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
