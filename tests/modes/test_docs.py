"""README.md, README_CN.md and docs/adding-a-mode.md describe the same steps for adding a mode."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def steps(path: Path, start: str) -> list[str]:
    """The code spans of the numbered steps that follow the line starting with ``start``."""
    text = path.read_text(encoding="utf-8")
    block = text[text.index(start) :].split("\n\n", 2)[1]
    return re.findall(r"`([^`]+)`", block)


def test_readmes_and_the_walkthrough_agree():
    english = steps(ROOT / "README.md", "To support a new failure mode")
    chinese = steps(ROOT / "README_CN.md", "支持一种新的失败模式")
    assert english and english == chinese
    guide = (ROOT / "docs" / "adding-a-mode.md").read_text(encoding="utf-8")
    missing = [span for span in english if span.split("(")[0].split(" ->")[0] not in guide]
    assert missing == []
