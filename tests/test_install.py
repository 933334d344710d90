"""A regular (non-editable) install works: the wheel, installed in a fresh virtual environment
without the source tree, runs notebooks 00 and 12 from a folder outside the checkout; an archive of
the repository (what `pip install git+URL` builds on Colab or JupyterHub) runs the Colab first cell
and notebook 00 with a fake `google.colab` module.

These tests build a virtual environment (about 2 minutes and 6 GB with PyTorch's CUDA build), so
they run only when TP_TEST_INSTALL is set: `TP_TEST_INSTALL=1` (what `.ci/run` does) makes a fresh
one in a temporary folder, `TP_TEST_INSTALL=/path/to/venv` uses (and reinstalls the course into) an
existing one. The wheel test and the Colab test share one environment, in this order.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETTING = os.environ.get("TP_TEST_INSTALL", "")
pytestmark = pytest.mark.skipif(
    not SETTING, reason="set TP_TEST_INSTALL=1 (.ci/run does) to test the wheel and the Colab route "
    "in a fresh virtual environment (about 2 minutes, 6 GB)")

# Runs in the fresh environment's Python: executes notebooks with nbclient, then a last cell that
# says which tp_utils the kernel imported.
RUNNER = r"""
import json, sys, time
import nbformat
from nbclient import NotebookClient
out = {}
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import sys as _s, tp_utils as _t; print('WHERE', _t.__file__, _s.executable)"))
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
    where = [o["text"] for o in nb.cells[-1].outputs if o.get("name") == "stdout"]
    out[path] = {"seconds": round(time.perf_counter() - start, 1), "where": "".join(where).split()[1:],
                 "outputs": [[o.get("text", "") for o in c.get("outputs", []) if o.get("output_type") == "stream"]
                             for c in nb.cells]}
print("RESULT" + json.dumps(out))
"""


def _clean_env(workdir: Path, **extra) -> dict:
    """The environment of a student's shell: no PYTHONPATH (the checkout is not importable), the
    assets offline, Jupyter's user folders in ``workdir`` (no kernel spec of another environment)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TP_ANSWERS_DIR")}
    env.update(JUPYTER_DATA_DIR=str(workdir / "jupyter-data"), JUPYTER_CONFIG_DIR=str(workdir / "jupyter-config"),
               IPYTHONDIR=str(workdir / "ipython"), TQDM_DISABLE="1", MPLBACKEND="Agg")
    env.pop("JUPYTER_PATH", None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    if SETTING == "1":
        path = tmp_path_factory.mktemp("install") / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    else:
        path = Path(SETTING)
        if not (path / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a clean copy: what git tracks (and the working tree's changes), no build/
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "bench-out", "figures"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                   check=True)
    (found,) = out.glob("tp_utils-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(venv, wheel) -> Path:
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    start = time.perf_counter()
    subprocess.run([*pip, str(wheel)], check=True)  # with its dependencies (PyTorch, Jupyter, ...)
    print(f"\nwheel installed with its dependencies in {time.perf_counter() - start:.0f} s")
    subprocess.run([*pip, "--force-reinstall", "--no-deps", str(wheel)], check=True)  # this wheel, also in a reused venv
    return venv


def _run_notebooks(venv: Path, workdir: Path, names: list[str], **env) -> dict:
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", RUNNER, *names], cwd=workdir,
                          env=_clean_env(workdir, **env), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT", 1)[1])


def test_wheel_holds_the_package_data_and_no_checkout_folder(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for data in ("tp_utils/data/expected/00.json", "tp_utils/data/fast_style/cin_3styles.pt",
                 "tp_utils/data/fast_style/cin_3styles.json", "tp_utils/registry/imagenet_samples.csv"):
        assert data in names, data
    tracked = subprocess.run(["git", "ls-files", "tp_utils/data", "tp_utils/registry"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert set(tracked) <= set(names), set(tracked) - set(names)  # every package data file ships
    assert not [n for n in names if n.startswith(("solutions/", "tests/", "data/", "notebooks/"))]
    print(f"\n{wheel.name}: {wheel.stat().st_size} bytes, {len(names)} files")


def test_installed_package_reads_its_data_outside_the_checkout(installed, tmp_path):
    code = ("import json, tp_utils, tp_utils.checks as c, tp_utils.transformer_net as t;"
            "print(json.dumps([tp_utils.__file__, str(t.TRAINED), t.TRAINED.stat().st_size, c.expected('00')]))")
    proc = subprocess.run([str(installed / "bin" / "python"), "-c", code], cwd=tmp_path,
                          env=_clean_env(tmp_path), capture_output=True, text=True, check=True)
    package, trained, size, expected = json.loads(proc.stdout)
    assert Path(package).is_relative_to(installed) and not Path(package).is_relative_to(ROOT)
    assert Path(trained).is_relative_to(installed) and size > 100_000
    assert expected == json.loads((ROOT / "tp_utils/data/expected/00.json").read_text())


def test_solutions_00_and_12_run_from_a_folder_outside_the_checkout(installed, tmp_path):
    for name in ("00_setup_and_tour", "09_feature_inversion", "10_textures", "12_fast_style_transfer"):
        shutil.copy(ROOT / "solutions" / f"{name}.ipynb", tmp_path)  # 12 takes 09's and 10's answers
    result = _run_notebooks(installed, tmp_path, ["00_setup_and_tour.ipynb", "12_fast_style_transfer.ipynb"])
    for path, r in result.items():
        package, python = r["where"]
        assert Path(package).is_relative_to(installed) and Path(python).is_relative_to(installed), r["where"]
        print(f"{path}: {r['seconds']} s in the installed environment")
    assert any("✔" in "".join(o) for o in result["00_setup_and_tour.ipynb"]["outputs"])  # its self-check ran


def test_colab_first_cell_then_notebook_00_from_an_archive_of_the_repository(installed, tmp_path):
    """Colab, faked: the kernel starts with a `google.colab` module imported (a stub whose
    enable_custom_widget_manager writes to a log), the notebook is alone in its folder (no
    checkout), and the first cell pip-installs the course from an archive of the repository (git
    archive: what `pip install git+URL` builds), as it would from the repository's URL."""
    import nbformat

    from tp_utils import colab

    commit = subprocess.run(["git", "stash", "create"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    archive = tmp_path / "course.tar.gz"  # HEAD, with the working tree's changes to tracked files
    subprocess.run(["git", "archive", "--format=tar.gz", "--prefix=course/", "-o", str(archive), commit or "HEAD"],
                   cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        assert "course/tp_utils/data/fast_style/cin_3styles.pt" in tar.getnames()
    stub = tmp_path / "stub" / "google" / "colab"  # google/ stays a namespace package
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("from . import output\n")
    (stub / "output.py").write_text("import os\n\ndef enable_custom_widget_manager():\n"
                                    "    with open(os.environ['FAKE_COLAB_LOG'], 'a') as f:\n"
                                    "        f.write('enable_custom_widget_manager\\n')\n")
    work = tmp_path / "content"
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab\n")  # as Colab's kernel does
    log = tmp_path / "colab.log"

    _, version = colab.settings(ROOT)
    nb = nbformat.read(ROOT / "solutions" / "00_setup_and_tour.ipynb", as_version=4)
    colab.ensure_first_cell(nb, f"tp-utils @ {archive.as_uri()}", version)
    nbformat.write(nb, work / "00_setup_and_tour.ipynb")
    start = time.perf_counter()
    result = _run_notebooks(installed, work, ["00_setup_and_tour.ipynb"], PYTHONPATH=str(tmp_path / "stub"),
                            FAKE_COLAB_LOG=str(log))["00_setup_and_tour.ipynb"]
    print(f"\nfaked Colab: first cell and notebook 00 in {time.perf_counter() - start:.0f} s")
    first = "".join(result["outputs"][0])
    print(first)
    assert f"course {version} installed; 1 asset file(s) of model" in first
    assert ("GPU runtime on" in first) != ("no GPU runtime" in first)
    assert log.read_text() == "enable_custom_widget_manager\n"
    package, _ = result["where"]
    assert Path(package).is_relative_to(installed)
    (direct_url,) = Path(package).parents[1].glob("tp_utils-*.dist-info/direct_url.json")
    assert archive.as_uri() in direct_url.read_text()  # installed by the first cell, from the archive
    assert any("✔" in "".join(o) for o in result["outputs"])
