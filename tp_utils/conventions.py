"""The notebook format's conventions, in one place: what the tools (``tp generate``, ``tp check``,
``tp grade``, ``load_exports``, the mutation catalogue) and the notebooks agree on.

- ``export``: the tag of the cells that hold the imports and the exercises' functions
  (:func:`tp_utils.notebook.load_exports` runs only those).
- ``### BEGIN SOLUTION`` / ``### END SOLUTION`` in a code cell, ``<!-- BEGIN SOLUTION -->`` /
  ``<!-- END SOLUTION -->`` in a markdown cell: the answer, which the student notebook replaces
  by :data:`CODE_STUB` / :data:`ANSWER_STUB`.
- ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``: lines of a check cell students do not see.
- IPython magics and shell escapes (``%...``, ``!...``) are dropped when a cell runs as plain Python.
- An exercise is the top-level functions (:data:`DEF`) of its solution cell, named after the first.
"""
from __future__ import annotations

import re

EXPORT_TAG = "export"
MAGIC = re.compile(r"^\s*[%!]")
CODE_BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
CODE_END = re.compile(r"^\s*### END SOLUTION\s*$")
CODE_REGION = re.compile(r"^\s*### BEGIN SOLUTION\s*$", re.M)
MD_REGION = re.compile(r"^\s*<!-- BEGIN SOLUTION -->\s*$", re.M)
MD_BEGIN_TEXT = "<!-- BEGIN SOLUTION -->"
BEGIN = re.compile(r"^(\s*)(### BEGIN SOLUTION|<!-- BEGIN SOLUTION -->)\s*$")
END = re.compile(r"^\s*(### END SOLUTION|<!-- END SOLUTION -->)\s*$")
DEF = re.compile(r"^def (\w+)\(", re.M)  # a top-level function of a cell
BEGIN_HIDDEN = re.compile(r"^\s*### BEGIN HIDDEN TESTS\s*$")
END_HIDDEN = re.compile(r"^\s*### END HIDDEN TESTS\s*$")
STUB_MESSAGE = "not written yet: replace these two lines with your code"
CODE_STUB = ["# YOUR CODE HERE", f'raise NotImplementedError("{STUB_MESSAGE}")']
ANSWER_STUB = ["YOUR ANSWER HERE"]


def strip_magics(source: str) -> str:
    """A cell's source without IPython magics and shell escapes."""
    return "\n".join(ln for ln in source.splitlines() if not MAGIC.match(ln))


def is_export(cell) -> bool:
    return EXPORT_TAG in cell.get("metadata", {}).get("tags", [])
