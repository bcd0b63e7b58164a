"""A git-style unified diff over several files, which ``git apply`` accepts."""

from __future__ import annotations

import difflib

_NO_NEWLINE = "\\ No newline at end of file\n"


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    return [line if line.endswith("\n") else line + "\n" + _NO_NEWLINE for line in lines]


def file_diff(path: str, old: str | None, new: str) -> str:
    """The diff turning ``old`` (None: the file does not exist) into ``new`` for ``path``."""
    if old == new:
        return ""
    header = [f"diff --git a/{path} b/{path}\n"]
    if old is None:
        header.append("new file mode 100644\n")
    hunks = difflib.unified_diff(
        [] if old is None else _lines(old),
        _lines(new),
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(header) + "".join(hunks)


def combined_diff(changes: dict[str, tuple[str | None, str]]) -> str:
    """One diff for every ``path -> (old, new)`` change, files in path order."""
    return "".join(file_diff(path, old, new) for path, (old, new) in sorted(changes.items()))
