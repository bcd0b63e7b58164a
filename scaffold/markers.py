"""Values the tool, its generated files and the test kit must agree on, defined once."""

from __future__ import annotations

TODO_MARK = "TODO(scaffold)"  # marks what a generated file leaves to finish by hand; REPORT.md lists each one
TOLERANCE_LITERAL = "1e-5"  # max abs error of a replacement against the original module (float32), as written
EQUIVALENCE_TOLERANCE = float(TOLERANCE_LITERAL)
