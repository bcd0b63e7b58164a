"""The generation plan: every file and registry edit an adaptation consists of, as data.

Generators (``scaffold/generators/``) fill a :class:`Plan`; the renderer writes the plugin,
report and test from it; the patcher (``scaffold/patch/``) applies its ``edits`` and ``files``
to an AutoRound checkout. Paths are relative to the AutoRound checkout root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SPECIAL_MODEL_HANDLER = "auto_round/special_model_handler.py"
REPLACE_MODULES = "auto_round/modeling/fused_moe/replace_modules.py"
UTILS_COMMON = "auto_round/utils/common.py"


@dataclass(frozen=True)
class DictEntry:
    """``REGISTRY[key] = value`` in a dict literal (or as a ``D["k"] = v`` statement)."""

    file: str
    registry: str  # e.g. BUILTIN_MODULES, SPECIAL_MULTIMODAL_BLOCK, SPECIAL_SHARED_CACHE_KEYS
    key: str
    value: str  # Python source of the value, e.g. 'LazyImport("auto_round.modeling.fused_moe.foo")'
    runtime_value: str | None = None  # value the runtime plugin uses instead (e.g. 'LazyImport(__name__)')
    kind: str = "dict_entry"


@dataclass(frozen=True)
class SequenceItem:
    """A string added to a tuple/list constant (``INNER_SUPPORTED_LAYER_TYPES``, ...)."""

    file: str
    registry: str
    item: str
    kind: str = "sequence_item"


@dataclass(frozen=True)
class TopLevelFunction:
    """A new module-level function, inserted before ``before`` (a registry it is referenced by)."""

    file: str
    name: str
    code: str  # full ``def`` source
    before: str | None = None
    kind: str = "function"


@dataclass(frozen=True)
class HandlerBranch:
    """``if model_type == "<model_type>": <body>`` appended inside ``function`` (``_handle_special_model``)."""

    file: str
    function: str
    model_type: str
    body: str  # statements of the branch body, unindented
    kind: str = "branch"


@dataclass(frozen=True)
class IgnoreRule:
    """A module-level ``register_ignore_layers(...)`` call for ``model_type``."""

    file: str
    model_type: str
    call: str  # full call source
    kind: str = "ignore_rule"


Edit = DictEntry | SequenceItem | TopLevelFunction | HandlerBranch | IgnoreRule


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
