"""The attack catalogue (tests/attacks/nb00.py) graded with and without the sandbox: points per
attack (an empty submission gets 0), whether the reports hold answer text, changed after the run,
and whether a connection reached the grading machine.

    python benchmarks/attacks.py              # the sandbox (what `tp grade` does)
    python benchmarks/attacks.py --unsandboxed  # the grader's own processes (how it was)
"""
import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--unsandboxed", action="store_true")
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("test_attacks", ROOT / "tests" / "test_attacks.py")
    t = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(t)
    with tempfile.TemporaryDirectory() as tmp:
        r = t.run_catalogue(Path(tmp), unsandboxed=args.unsandboxed)
    secrets = t.secret_lines()
    leaked = sorted({name for name, text in r["texts"].items() for ln in secrets if ln in text})
    print(f"\n{'unsandboxed' if args.unsandboxed else 'sandbox'}: points of {r['full']:g}")
    for name in r["names"]:
        print(f"  {name:24s} {r['points'].get(name, float('nan')):g}")
    print(f"  answer or hidden-test lines in: {', '.join(leaked) or 'no report'}")
    print(f"  reports changed after the run: {r['later'] != r['texts']}; connection reached the grader: {r['reached']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
