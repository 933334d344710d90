"""`tp release`: the students' copy holds no solutions/, tests/ or instructor tools and no solution
region (the scan finds one when it is planted), installs in a fresh venv (PyTorch and the other
dependencies taken from this machine's environment, not downloaded), and notebook 00's cells run
there up to the exercise, which waits for the student's answer; instructor commands say in one
line that they need the checkout."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from tp_tools import release

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release") / "course"
    files = release.build(ROOT, folder)
    assert len(files) > 20
    return folder


def test_release_holds_what_students_need_and_nothing_else(out):
    names = {p.name for p in out.iterdir()}
    assert {"notebooks", "tp_utils", "README.md", "pyproject.toml", "LICENSE"} <= names
    assert (out / "tp_utils" / "data" / "fast_style" / "cin_3styles.pt").is_file()  # package data
    assert release.forbidden(out) == []
    assert sorted(p.name for p in (out / "notebooks").glob("*.ipynb")) == \
        sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    assert 'packages = ["tp_utils"]' in (out / "pyproject.toml").read_text()
    assert "pytest" not in (out / "pyproject.toml").read_text()
    assert release.leaks(ROOT / "solutions", out) == []


def test_the_scan_finds_a_planted_answer(out, tmp_path):
    planted = tmp_path / "planted"
    shutil.copytree(out / "tp_utils", planted / "tp_utils")
    shutil.copy(ROOT / "solutions" / "09_feature_inversion.ipynb", planted / "answers.ipynb")
    found = release.leaks(ROOT / "solutions", planted)
    assert any("answers.ipynb" in f and "09_feature_inversion" in f for f in found)
    assert not any("tp_utils" in f for f in found)  # the package itself holds no answer


RUNNER = textwrap.dedent('''
    import json, re, sys, traceback
    import nbformat, matplotlib
    from tp_utils.conventions import strip_magics
    matplotlib.use("Agg")
    nb = nbformat.read(sys.argv[1], as_version=4)
    ns, ran, waiting, failed, unbound = {"__name__": "__main__"}, 0, 0, [], set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        source = strip_magics(cell.source)
        try:
            exec(compile(source, f"cell {i}", "exec"), ns)
            ran += 1
        except BaseException as err:
            chain, e = [], err
            while e is not None:
                chain.append(type(e).__name__)
                e = e.__cause__ or e.__context__
            missing = re.search(r"name '(\\w+)' is not defined", str(err)) if isinstance(err, NameError) else None
            if "NotImplementedError" in chain or "UnfinishedExercise" in chain \
                    or (missing and missing.group(1) in unbound):
                waiting += 1  # the exercise's answer, or what a cell after it binds from the answer
                import ast
                unbound |= {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)
                            and isinstance(n.ctx, ast.Store)}
            else:
                failed.append((i, grade_id, traceback.format_exc()[-800:]))
    import tp_utils
    print(json.dumps({"ran": ran, "waiting": waiting, "failed": failed, "tp_utils": tp_utils.__file__}))
''')


@pytest.fixture(scope="module")
def venv(out, tmp_path_factory):
    """A fresh venv with the release installed; the dependencies come from this environment's
    site-packages through a path file (nothing is downloaded)."""
    env_dir = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)  # pip too from here
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "course-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                          "-e", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return env_dir, env


def test_release_installs_and_notebook_00_runs_up_to_its_exercise(out, venv, tmp_path):
    env_dir, env = venv
    (tmp_path / "run.py").write_text(RUNNER)
    run = subprocess.run([str(env_dir / "bin" / "python"), str(tmp_path / "run.py"), "00_setup_and_tour.ipynb"],
                         cwd=out / "notebooks", capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["tp_utils"]).resolve().is_relative_to(out.resolve())  # the release's own copy
    assert result["failed"] == [], result["failed"]
    assert result["ran"] >= 8 and result["waiting"] >= 1  # the exercise's check waits for the answer


def test_instructor_commands_say_they_need_the_checkout(out, venv):
    env_dir, env = venv
    run = subprocess.run([str(env_dir / "bin" / "tp"), "grade", "submissions"], cwd=out,
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "instructor command" in lines[0], run.stderr[-1000:]
