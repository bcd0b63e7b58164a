"""User-facing errors: one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import re

_RULE = re.compile(r"^[\W_]*$")  # a line of only punctuation (``-----``, ``====``)


def _is_header(line: str) -> bool:
    """A line that announces what follows instead of saying what is wrong (``...:``, a ruler)."""
    return line.endswith(":") or bool(_RULE.match(line))


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """``Type: the first line that says what is wrong`` — how an exception is quoted in findings and errors.

    Header lines (ending with ``:``, or only punctuation) are joined with the lines after them up to the
    first informative one, so ``Validation error for field 'x':`` keeps the reason given on the next line.
    ``limit`` cuts the message (not the type name) to that many characters.
    """
    return f"{type(exc).__name__}: {cause_line(str(exc), limit)}".strip()


def cause_line(message: str, limit: int | None = None) -> str:
    """The first line of ``message`` that says what is wrong, header lines before it kept (see first_line)."""
    kept: list[str] = []
    for line in (line.strip() for line in message.splitlines() if line.strip()):
        if not _RULE.match(line):
            kept.append(line)
        if not _is_header(line):
            break
    text = " ".join(kept)
    return text[:limit] if limit else text


class ScaffoldError(Exception):
    """An error caused by the user's input or environment.

    ``stage`` names the pipeline stage that failed (resolve, config, import, build,
    forward, shrink, patch, ...); the CLI prints ``error [stage]: message`` and exits 2.
    """

    exit_code = 2

    def __init__(self, message: str, stage: str = "input", hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.hint = hint

    def one_line(self) -> str:
        text = f"error [{self.stage}]: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return " ".join(text.split())
