"""Instructor tooling of the course (grading, the sandbox, student notebooks, the release).

It imports :mod:`tp_utils` (the students' library); :mod:`tp_utils` never imports it.
"""
