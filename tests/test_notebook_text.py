"""What the student reads: one question-numbering scheme, and no testing marker in a cell's text."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "notebooks").glob("*.ipynb"))
LABEL = re.compile(r"\*\*(\d\d) · Q(\d+)(?: \((?:practical, question \d+|lecture)\))?\.\*\*")
OTHER = re.compile(r"\*\*(?:Q\d+|Questions?(?: \d+)?)\b[^*]*\*\*")  # the schemes used before


def cells(path):
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name[:2]}")
def test_questions_carry_one_label_each_numbered_in_order(path):
    text = "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")
    labels = LABEL.findall(text)
    assert labels, "no question"
    assert {nn for nn, _ in labels} == {path.name[:2]}, labels
    assert [int(k) for _, k in labels] == list(range(1, len(labels) + 1)), labels
    assert OTHER.findall(text) == [], "a question label outside the scheme '**NN · Qk.**'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name[:2]}")
def test_no_nbval_marker_in_what_the_student_reads(path):
    """nbval reads the cell tag `nbval-ignore-output`; a `# NBVAL_...` comment would show in the cell."""
    for c in cells(path):
        assert "NBVAL" not in "".join(c["source"]), "".join(c["source"])[:200]
