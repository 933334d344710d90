"""binder/ (repo2docker): the pinned requirements cover the package's dependencies, satisfy
pyproject's ranges, and resolve together; postBuild installs the course and fetches its assets."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "binder" / "requirements.txt"


def pins() -> dict[str, str]:
    lines = [ln.split("#")[0].strip() for ln in REQUIREMENTS.read_text().splitlines()]
    return dict(ln.split("==") for ln in lines if ln and not ln.startswith("-"))


def dependencies() -> list[Requirement]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S).group(1)
    return [Requirement(r) for r in re.findall(r'"([^"]+)"', block)]


def test_pins_cover_and_satisfy_the_package_dependencies():
    pinned = pins()
    deps = dependencies()
    assert sorted(r.name for r in deps) == sorted(pinned), "binder/requirements.txt != pyproject dependencies"
    for r in deps:
        assert r.specifier.contains(pinned[r.name]), f"{r.name}=={pinned[r.name]} is outside {r.specifier}"


def test_post_build_installs_the_course_regularly_and_fetches_every_asset():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK)
    assert "pip install --no-cache-dir --no-deps .\n" in post and "\ntp fetch\n" in post and "-e" not in post.split()
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"  # requires-python >= 3.9


@pytest.mark.skipif(not os.environ.get("TP_TEST_INSTALL"),
                    reason="set TP_TEST_INSTALL=1 (.ci/run does): asks the package index (about 25 s)")
def test_pinned_requirements_resolve_together(tmp_path):
    # download.pytorch.org is out of reach here: PyPI's builds of the same versions stand in
    reachable = tmp_path / "requirements.txt"
    reachable.write_text("".join(ln + "\n" for ln in REQUIREMENTS.read_text().splitlines()
                                 if not ln.startswith("--extra-index-url")))
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
                    "--report", str(report), "-r", str(reachable)], check=True)
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    for name, version in pins().items():
        assert resolved[name.lower()] == version, (name, resolved.get(name.lower()))
    print(f"\n{len(resolved)} distributions resolve with the {len(pins())} pins")
