"""Run every solution notebook headless; report wall time and peak memory against the budgets.

    python benchmarks/notebooks.py [NOTEBOOK ...]

Budgets (CONTRIBUTING.md section 8, 2-core CPU): each notebook under 2 minutes, all of them
under 12 minutes, peak memory of any notebook under 3 GB. Also reports the time to
decode and load the default model from a fresh cache, and to load the labelled photos.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
PEAK = "import resource; print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def load_time() -> float:
    """Seconds to decode and load SqueezeNet in a fresh process with an empty cache."""
    with tempfile.TemporaryDirectory() as cache:
        code = ("import time, tp_utils as tp; t = time.perf_counter(); tp.load_model(); "
                "print(time.perf_counter() - t)")
        env = dict(os.environ, TP_CACHE_DIR=cache)
        first = float(subprocess.check_output([sys.executable, "-c", code], env=env))
        cached = float(subprocess.check_output([sys.executable, "-c", code], env=env))
    return first, cached


def photos_time() -> float:
    """Seconds to load the 198 labelled ImageNet photos as a (198, 3, 224, 224) tensor (fresh process)."""
    code = ("import time, tp_utils as tp; t = time.perf_counter(); x = tp.labelled_set().images; "
            "assert tuple(x.shape) == (198, 3, 224, 224); print(time.perf_counter() - t)")
    return float(subprocess.check_output([sys.executable, "-c", code]))


def main(paths):
    os.environ.setdefault("TQDM_DISABLE", "1")
    first, cached = load_time()
    print(f"default model: decoded and loaded in {first:.2f} s, from the cache in {cached:.2f} s")
    print(f"labelled ImageNet photos: (198, 3, 224, 224) tensor in {photos_time():.2f} s")
    total, worst_mem = 0.0, 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(PEAK))
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(path).parent)}}).execute()
        seconds = time.perf_counter() - start
        peak_kb = int(next(o["text"].split()[1] for o in nb.cells[-1].outputs if "PEAK_KB" in o.get("text", "")))
        total, worst_mem = total + seconds, max(worst_mem, peak_kb)
        flag = "" if seconds < 120 and peak_kb < 3e6 else "  OVER BUDGET"
        print(f"{Path(path).name:36s} {seconds:6.1f} s  peak {peak_kb / 1e6:5.2f} GB{flag}", flush=True)
    print(f"{'all notebooks':36s} {total:6.1f} s  peak {worst_mem / 1e6:5.2f} GB "
          f"(budgets: 120 s each, 720 s together, 3 GB)")


if __name__ == "__main__":
    main(sys.argv[1:] or sorted(str(p) for p in (ROOT / "solutions").glob("*.ipynb")))
