"""Add the adapted model's row to the supported-models table of the checkout's READMEs.

AutoRound's README has no supported-models table in 0.16.x (its VLM support matrix lives elsewhere),
so there the row is skipped with a note; a README that has such a table gets one row per model type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

README_FILES = ("README.md", "README_CN.md")

_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
_TABLE_TITLE = re.compile(r"(supported|validated)\b.*\b(models?|architectures?)|支持.*模型|验证.*模型", re.IGNORECASE)


@dataclass
class ReadmeRow:
    """The README text with the row added (``text``), or why nothing was added (``note``)."""

    text: str
    added: bool
    present: bool = False
    note: str = ""


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _table_after(lines: list[str], start: int) -> tuple[int, int] | None:
    """(header index, index after the last row) of the first table below ``lines[start]``, before the next heading."""
    index = start + 1
    while index < len(lines) and not lines[index].lstrip().startswith("|"):
        if _HEADING.match(lines[index]):
            return None
        index += 1
    if index + 1 >= len(lines) or not set(lines[index + 1].strip()) <= set("|:- "):
        return None
    end = index + 2
    while end < len(lines) and lines[end].lstrip().startswith("|"):
        end += 1
    return index, end


def _row(header: list[str], model_type: str, model_class: str) -> str:
    cells = []
    for position, title in enumerate(header):
        lowered = title.lower()
        if position == 0:
            cells.append(f"`{model_type}`")
        elif "class" in lowered or "architecture" in lowered:
            cells.append(f"`{model_class}`")
        else:
            cells.append("")
    return "| " + " | ".join(cells) + " |"


def add_supported_row(text: str, model_type: str, model_class: str) -> ReadmeRow:
    """``text`` with a row for ``model_type`` in its supported/validated-models table."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        heading = _HEADING.match(line)
        if not heading or not _TABLE_TITLE.search(heading.group(1)):
            continue
        table = _table_after(lines, number)
        if table is None:
            continue
        header_index, end = table
        if any(f"`{model_type}`" in _cells(row)[0] for row in lines[header_index + 2 : end]):
            return ReadmeRow(text, added=False, present=True)
        row = _row(_cells(lines[header_index]), model_type, model_class)
        new_lines = [*lines[:end], row, *lines[end:]]
        return ReadmeRow("\n".join(new_lines) + ("\n" if text.endswith("\n") else ""), added=True)
    return ReadmeRow(text, added=False, note="no supported-models table found; add the model by hand if wanted")
