"""The attack catalogue (tests/attacks/nb00.py) against `tp grade`: no attack scores more than an empty
submission, the victim (a correct submission graded in the same run) keeps its points, the reports
hold no line of the solution or of the hidden tests, the reports do not change after the run, no
process of the sandbox's users outlives it, and no connection reaches the grading machine."""
import csv
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tp_tools import plans

ROOT = Path(__file__).resolve().parents[1]
NB00 = "00_setup_and_tour.ipynb"
_spec = importlib.util.spec_from_file_location("attacks_nb00", ROOT / "tests" / "attacks" / "nb00.py")
attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attacks)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")


def secret_lines() -> set:
    """Lines of the solution's exercise regions and of the hidden tests that no public file has."""
    from tp_tools.student import _regions

    nb = nbformat.read(ROOT / "solutions" / NB00, as_version=4)
    lines = {ln.strip() for c in nb.cells if c.cell_type == "code" for r in _regions(c.source) for ln in r}
    for path in (ROOT / "tests" / "test_notebook00.py", ROOT / "tests" / "mutations" / "nb00.py"):
        lines |= {ln.strip() for ln in path.read_text().splitlines()}
    public = {ln.strip() for c in nbformat.read(ROOT / "notebooks" / NB00, as_version=4).cells
              for ln in c.source.splitlines()}
    for _, _, before, body in attacks.ATTACKS:
        public |= {ln.strip() for ln in (before + body).splitlines()}
    return {ln for ln in lines - public if len(ln) >= 20 and not ln.startswith(("#", '"""', "import ", "from "))}


def sandbox_processes() -> list[int]:
    from tp_tools.harness import UID_BASE

    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            if UID_BASE <= uid < UID_BASE + 1000:
                out.append(int(entry))
        except (OSError, ValueError, StopIteration):
            pass
    return out


def run_catalogue(tmp: Path, unsandboxed: bool = False) -> dict:
    """Grade the catalogue; the points per submission, the reports' text before and after a pause,
    whether the listening socket was reached."""
    ex = plans.plan(ROOT / "solutions" / NB00, ROOT / "tests").exercises[0]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    folder, out = tmp / "submissions", tmp / "grades"
    names = attacks.build(folder, ROOT, [i for i, _ in ex.items()], listener.getsockname()[1])
    run = subprocess.run([sys.executable, "-m", "tp_utils.cli", "grade", str(folder), "--out", str(out),
                          "--timeout", "60", "--memory", "1024", "--jobs", "1"]
                         + (["--unsandboxed"] if unsandboxed else []),
                         cwd=ROOT, capture_output=True, text=True, timeout=1500, env=dict(os.environ, TQDM_DISABLE="1"))
    print(run.stdout[-5000:], run.stderr[-3000:])
    reached = False
    try:
        listener.accept()
        reached = True
    except OSError:
        pass
    listener.close()

    def read():
        texts = {p.name: p.read_text(errors="replace") for p in sorted(out.iterdir()) if p.is_file()}
        with open(out / "grades.csv", newline="") as f:
            rows = {r["student"]: r for r in csv.DictReader(f)}
        return texts, rows

    texts, rows = read()
    time.sleep(5)  # a process left behind would change the reports now
    later, _ = read()
    column = "00:topk_predictions"
    points = {s: float(rows[s][column]) for s in names if s in rows and rows[s][column] != ""}
    return {"points": points, "full": sum(w for _, w in ex.items()), "texts": texts, "later": later,
            "reached": reached, "names": names, "returncode": run.returncode,
            "details": json.loads((out / "details.json").read_text())}


@pytest.fixture(scope="module")
def caught(tmp_path_factory):
    return run_catalogue(tmp_path_factory.mktemp("attacks"))


def test_every_attack_scores_at_most_an_empty_submission(caught):
    points = caught["points"]
    assert set(points) == set(caught["names"]), sorted(set(caught["names"]) - set(points))
    gains = {s: p for s, p in points.items() if s.startswith("attack_") and p > points["empty"]}
    assert not gains, gains
    assert points["correct"] == caught["full"]  # the victim keeps its points


def test_no_answer_text_in_the_reports(caught):
    secrets = secret_lines()
    assert len(secrets) >= 10
    leaks = {(name, ln) for name, text in caught["texts"].items() for ln in secrets if ln in text}
    assert not leaks, sorted(leaks)[:5]


def test_the_reports_do_not_change_after_the_run(caught):
    assert caught["later"] == caught["texts"]


def test_no_process_outlives_the_run_and_no_network(caught):
    assert not caught["reached"]
    output = json.dumps(caught["details"])
    assert "NETWORK OK" not in output
    assert sandbox_processes() == []
