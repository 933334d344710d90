"""Planted mistakes (tests/mutations/nbNN.py) against the self-checks and `tp grade`'s tests.

One run of benchmarks/mutations.py (one process: the cells the checks need run once per notebook,
each mutant in a forked child): the solutions pass every check and hidden test of the catalogue,
every mutant is caught by the grader (self-checks + hidden tests), and the self-checks catch at
least as many mutants as they did when this floor was last raised. A notebook without a catalogue
is skipped, with the file to write.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("benchmark_mutations", ROOT / "benchmarks" / "mutations.py")
mutations = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutations)

NOTEBOOKS = sorted(p.name[:2] for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
CATALOGUED = [nn for nn in NOTEBOOKS if (ROOT / "tests" / "mutations" / f"nb{nn}.py").exists()]

# mutants the self-checks caught when measured: raise these when the checks improve, never lower them
CAUGHT_BY_CHECKS = {"00": 15, "01": 25, "02": 14, "03": 31, "04": 54, "05": 13, "06": 26, "07": 10, "08": 22, "09": 17, "10": 11, "11": 10, "12": 6}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("mutations") / "mutations.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1")
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mutations.py"), "--jobs", "2",
                          "--timeout", "300", "--json", str(out), "--notebooks", *CATALOGUED],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    print(run.stdout[-6000:])
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("nn", NOTEBOOKS)
def test_catalogue(results, nn):
    if nn not in CATALOGUED:
        pytest.skip(f"no mutation catalogue for notebook {nn} yet: write tests/mutations/nb{nn}.py")
    r = results["notebooks"][nn]
    assert not r["reference_failures"], f"the solution fails: {r['reference_failures']}"
    assert not r["invalid"], f"mutants that do not apply: {[(m['name'], m['reason']) for m in r['invalid']]}"
    assert r["mutants"] >= 5
    assert r["caught_by_grader"] == r["mutants"], \
        f"mistakes tp grade gives full points to: {[m['name'] for m in r['escapes']]}"
    floor = CAUGHT_BY_CHECKS.get(nn, 0)
    assert r["caught_by_checks"] >= floor, \
        (f"the self-checks now catch {r['caught_by_checks']} of {r['mutants']} planted mistakes (were {floor}); "
         f"slipping through: {[m['name'] for m in r['slips']]}")


def test_a_mutant_replaces_the_region_of_its_function_only():
    source = ("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\n\n"
              "def g(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n")
    out = mutations.apply_mutant(source, "g", "\n        z = 3 * x\n        return z\n    ")
    assert "    z = 3 * x\n    return z\n" in out and "return x + y" in out and "2 * x" not in out
    ns = {}
    exec(out, ns)
    assert ns["g"](2) == 6 and ns["f"](2) == 3
    with pytest.raises(ValueError):
        mutations.apply_mutant(source, "h", "return 0")


def test_every_catalogue_names_real_exercises():
    from tp_tools.plans import plan

    for nn in CATALOGUED:
        p = plan(next((ROOT / "solutions").glob(f"{nn}_*.ipynb")))
        functions = {f for ex in p.exercises for f in ex.functions}
        for m in mutations.load_catalogue(ROOT / "tests" / "mutations" / f"nb{nn}.py"):
            assert m["function"] in functions, (nn, m["name"])
