# nbgrader configuration for this course: copy it into the course folder (README, "Grading with
# nbgrader"). The stub that replaces each exercise's solution is the one `tp generate` writes
# (tp_utils/conventions.py, CODE_STUB), so that nbgrader's student notebooks are those of notebooks/ (a test checks it).
from tp_utils.conventions import CODE_STUB

c = get_config()  # noqa: F821 (nbgrader defines it)
c.CourseDirectory.root = "."
c.ClearSolutions.code_stub = {"python": "\n".join(CODE_STUB)}
