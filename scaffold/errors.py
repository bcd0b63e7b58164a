"""User-facing errors: one clear line and exit code 2, never a traceback."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` — how an exception is quoted in findings, notes and errors."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


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
