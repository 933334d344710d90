"""Grading time per student, with the sandbox (the proxy) and without (the old in-process checks).

    python benchmarks/grading_time.py --notebooks 00 04     # the solution graded as one student

Prints, per notebook and mode, the seconds of the run and the sum of the exercises' seconds (the
per-student cost: the sandbox adds its zygote's start once per notebook and worker, the proxy adds
the crossing of each call). Timings depend on the machine's load: say it when you quote them.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", nargs="+", default=["00", "04"])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs" / "ref"
        subs.mkdir(parents=True)
        for nn in args.notebooks:
            for p in (ROOT / "solutions").glob(f"{nn}_*.ipynb"):
                shutil.copy(p, subs / p.name)
        for nn in args.notebooks:
            for mode in ("unsandboxed", "sandbox"):
                out = Path(tmp) / f"out-{nn}-{mode}"
                start = time.monotonic()
                subprocess.run([sys.executable, "-m", "tp_utils.cli", "grade", str(subs.parent), "--out", str(out),
                                "--notebooks", nn, "--timeout", "600"] + (["--quick"] if args.quick else [])
                               + (["--unsandboxed"] if mode == "unsandboxed" else []),
                               cwd=ROOT, env=dict(os.environ, TQDM_DISABLE="1"), capture_output=True, check=True)
                run = time.monotonic() - start
                data = json.loads((out / "details.json").read_text())
                exercises = data["grades"][f"ref|{nn}"]
                per_student = sum(r["seconds"] for r in exercises.values())
                points = sum(r["points"] for r in exercises.values())
                maximum = sum(r["max"] for r in exercises.values())
                print(f"{nn} {mode:12s} run {run:6.1f} s, exercises {per_student:6.1f} s per student, "
                      f"points {points:g}/{maximum:g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
