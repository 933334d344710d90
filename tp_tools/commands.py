"""The instructor commands of ``tp`` that act on the notebooks: ``generate``, ``check``, ``run`` and
``figures`` (:mod:`tp_utils.cli` parses their arguments and calls these with the checkout)."""
from __future__ import annotations

import os
import time
from pathlib import Path


def cmd_generate(args, root: Path) -> int:
    from tp_tools.student import generate

    for path in generate(root / "solutions", root / "notebooks"):
        print(f"wrote {path.relative_to(root)}")
    return 0


def cmd_check(args, root: Path) -> int:
    from tp_tools.student import check, shipped_answers

    print(f"checking {root / 'notebooks'} against {root / 'solutions'}, and {root / 'tp_utils'}")
    problems = check(root / "solutions", root / "notebooks")
    problems += shipped_answers(root / "solutions", root / "tp_utils")
    for p in problems:
        print(p)
    n = len(list((root / "solutions").glob("*.ipynb")))
    print(f"{n} solution notebooks, {len(problems)} problems")
    return 1 if problems else 0


def _scrub(nb, paths) -> None:
    """Drop the stderr outputs that name a folder of this machine (a download's log line, say):
    stored outputs must not depend on the machine (nbval never compares stderr)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if not (
                o.get("output_type") == "stream" and o.get("name") == "stderr"
                and any(p in o.get("text", "") for p in paths))]


def cmd_run(args, root: Path) -> int:
    import nbformat
    from nbclient import NotebookClient

    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars are noise in stored outputs
    paths = [Path(p) for p in args.notebooks] or sorted((root / "solutions").glob("*.ipynb"))
    print(f"running {len(paths)} notebook(s) from {paths[0].parent.resolve() if paths else root / 'solutions'}")
    failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        try:
            NotebookClient(nb, timeout=args.timeout, kernel_name="python3", record_timing=False,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            status = "ok"
        except Exception as err:  # report and go on with the next notebook
            lines = [ln for ln in str(err).splitlines() if ln.strip()]
            status, failed = f"FAILED: {type(err).__name__}\n  " + "\n  ".join(lines[-6:]), failed + 1
        print(f"{path.name:40s} {time.perf_counter() - start:7.1f} s  {status}", flush=True)
        if args.inplace and status == "ok":
            _scrub(nb, [str(Path.home()), str(root)])
            nbformat.write(nb, path)
    return 1 if failed else 0


def cmd_figures(args, root: Path) -> int:
    import base64

    import nbformat

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(args.notebook, as_version=4)
    n = 0
    for i, cell in enumerate(nb.cells):
        for j, output in enumerate(cell.get("outputs", [])):
            png = output.get("data", {}).get("image/png")
            if png:
                path = out / f"{Path(args.notebook).stem}_cell{i:02d}_{j}.png"
                path.write_bytes(base64.b64decode(png))
                n += 1
    print(f"{n} figures written to {out}")
    return 0
