"""Generators: one module per failure mode, each ``generate(finding, plan, ctx) -> None``.

A generator turns one :class:`~scaffold.inspection.findings.Finding` into plan data (``scaffold/plan/model.py``):
new checkout files, registry edits, runtime-plugin code and facts for the generated test. The
helpers below write Python source that is already ``ruff format`` clean, so generated files
are byte-stable with or without ruff installed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaffold.inspection.context import InspectContext


def py_str(text: str) -> str:
    """A Python string literal in the quote style ``ruff format`` keeps (double, unless that needs escapes)."""
    if '"' in text and "'" not in text:
        return repr(text)
    return json.dumps(text, ensure_ascii=False)


def py_tuple(items: Iterable[str]) -> str:
    """A tuple literal of strings, with the trailing comma a one-element tuple needs."""
    literals = [py_str(item) for item in items]
    if len(literals) == 1:
        return f"({literals[0]},)"
    return f"({', '.join(literals)})"


def py_list_lines(items: Iterable[str], indent: int) -> list[str]:
    """List elements (already Python source), one per line with a trailing comma, for a multi-line literal."""
    pad = " " * indent
    return [f"{pad}{item}," for item in items]


def identifier(text: str) -> str:
    """``text`` as a lower-case Python identifier fragment (``Qwen3-Next`` -> ``qwen3_next``)."""
    ident = re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_").lower() or "model"
    return f"m_{ident}" if ident[0].isdigit() else ident


def indent(code: str, spaces: int = 4) -> str:
    """Indent every non-empty line of ``code``."""
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else "" for line in code.splitlines())


def py_literal(value: object, level: int = 0) -> str:
    """JSON-like data as Python source that ``ruff format`` leaves as is.

    Non-empty containers are exploded one element per line with a trailing comma (ruff's
    "magic trailing comma" keeps them that way); ``level`` is the indentation depth.
    """
    pad, inner = "    " * level, "    " * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        rows = [f"{inner}{py_str(str(key))}: {py_literal(item, level + 1)}," for key, item in value.items()]
        return "{\n" + "\n".join(rows) + f"\n{pad}}}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        rows = [f"{inner}{py_literal(item, level + 1)}," for item in value]
        return "[\n" + "\n".join(rows) + f"\n{pad}]"
    if isinstance(value, str):
        return py_str(value)
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else f'float("{value}")'
    raise TypeError(f"cannot write {type(value).__name__} as a Python literal")


def tiny_module_paths(ctx: InspectContext | None, cls_name: str) -> list[str] | None:
    """Paths of the ``cls_name`` modules in the tiny instance (the generated test's model), None without one.

    They can differ from a finding's paths, read on the full-size meta model: fewer layers, and models that
    interleave MoE and dense layers place a class at other indices.
    """
    from scaffold.inspection.context import tiny_or_none

    tiny = tiny_or_none(ctx)
    if tiny is None:
        return None
    return [name for name, mod in tiny.model.named_modules() if type(mod).__name__ == cls_name] or None
