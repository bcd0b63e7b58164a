"""The generation plan: every file and registry edit an adaptation consists of, as data.

Generators (``scaffold/modes/<mode>/generate.py``) fill a :class:`Plan`; the renderer writes the plugin,
report and test from it; the patcher (``scaffold/patch/``) applies its ``edits`` and ``files``
to an AutoRound checkout. Paths are relative to the AutoRound checkout root. The edit kinds live in
``scaffold/plan/edits.py`` and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaffold.plan.edits import DictEntry, EditKind, HandlerBranch, IgnoreRule, SequenceItem, TopLevelFunction

SPECIAL_MODEL_HANDLER = "auto_round/special_model_handler.py"
REPLACE_MODULES = "auto_round/modeling/fused_moe/replace_modules.py"
UTILS_COMMON = "auto_round/utils/common.py"

__all__ = [
    "REPLACE_MODULES",
    "SPECIAL_MODEL_HANDLER",
    "UTILS_COMMON",
    "CodeBlock",
    "DictEntry",
    "Edit",
    "EditKind",
    "GeneratedFile",
    "HandlerBranch",
    "IgnoreRule",
    "Plan",
    "PlanItem",
    "SequenceItem",
    "TodoItem",
    "TopLevelFunction",
]


Edit = EditKind  # any registered edit kind (scaffold.plan.edits.EDIT_KINDS)


@dataclass
class CodeBlock:
    """Python source the runtime plugin includes verbatim (classes, helpers), with its imports."""

    code: str
    imports: list[str] = field(default_factory=list)  # full import lines; the renderer dedupes and sorts them


@dataclass
class GeneratedFile:
    path: str  # relative to the AutoRound checkout root
    content: str


@dataclass
class TodoItem:
    file: str
    line: int
    text: str


@dataclass
class PlanItem:
    """What was generated for one finding."""

    mode: str
    summary: str
    generated: list[str] = field(default_factory=list)  # human-readable list of what was produced
    todos: list[str] = field(default_factory=list)


@dataclass
class Plan:
    model_type: str
    model_class: str
    files: list[GeneratedFile] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    items: list[PlanItem] = field(default_factory=list)
    plugin_parts: list[CodeBlock] = field(default_factory=list)  # code the runtime plugin includes, in order
    test_data: dict[str, Any] = field(default_factory=dict)  # facts the generated test checks
    autoround_version: str = ""  # the auto-round the edits were made for (installed, or the patched checkout)
