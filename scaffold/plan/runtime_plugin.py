"""Translate a plan into the runtime plugin: ``<slug>_autoround.py`` adapts the pip-installed auto-round.

The translation is mechanical, so the plugin and a patched checkout run the same source: each edit
kind (``scaffold/plan/edits.py``) gives its own plugin code (``plugin_definitions``, ``runtime_lines``).

Names an edit's code uses but the plugin does not define are imported from the AutoRound module
the edit targets, where the checkout version of the code finds them.
"""

from __future__ import annotations

import ast
import builtins
import symtable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scaffold.plan.edits import module_alias, module_name
from scaffold.render.import_block import format_imports

if TYPE_CHECKING:
    from scaffold.plan.model import Plan

__all__ = ["PluginSource", "defined_names", "free_globals", "module_alias", "module_name", "plugin_source"]

BUILTIN_NAMES = frozenset(dir(builtins)) | {"__name__", "__file__"}


@dataclass
class PluginSource:
    """The plugin's code, in the order the template writes it."""

    imports: str
    chunks: list[str] = field(default_factory=list)  # top-level statements/defs, two blank lines apart

    def body(self) -> str:
        return "\n\n\n".join(chunk.rstrip("\n") for chunk in self.chunks) + "\n"


def free_globals(code: str) -> set[str]:
    """Global names ``code`` reads but does not define itself (checked with the compiler's symbol tables)."""
    table = symtable.symtable(code, "<generated>", "exec")
    names = {
        s.get_name()
        for s in table.get_symbols()
        if s.is_referenced() and not (s.is_assigned() or s.is_imported() or s.is_parameter())
    }
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        stack.extend(child.get_children())
        names |= {s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced()}
    return names - defined


def defined_names(code: str) -> set[str]:
    """Top-level names a chunk of module code defines (functions, classes, assignments, imports)."""
    names: set[str] = set()
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def plugin_source(plan: Plan, extra_imports: list[str] | None = None) -> PluginSource:
    """Build the plugin's import block and top-level chunks from ``plan``."""
    imports = ["from __future__ import annotations", *(extra_imports or [])]
    chunks: list[str] = []
    defined: set[str] = set()
    for part in plan.plugin_parts:
        imports += part.imports
        chunks.append(part.code)
        defined |= defined_names(part.code)
    for line in imports:
        defined |= defined_names(line)
    for edit in plan.edits:
        for name, code in edit.plugin_definitions().items():
            chunks.append(code)
            defined.add(name)

    needed: dict[str, set[str]] = {}  # AutoRound module -> names imported from it
    for edit in plan.edits:
        missing = free_globals(edit.plugin_code()) - defined - BUILTIN_NAMES - {"model", "model_type"}
        if missing:
            needed.setdefault(module_name(edit.file), set()).update(missing)
    imports += [f"from {module} import {', '.join(sorted(names))}" for module, names in needed.items()]

    helpers: list[str] = []
    registrations: list[str] = []
    taken = set(defined)
    for edit in plan.edits:
        lines = edit.runtime_lines(taken)
        imports += lines.imports
        helpers += lines.helpers
        chunks += lines.chunks
        registrations += lines.registrations
    chunks += list(dict.fromkeys(helpers))
    if registrations:
        chunks.append("# Registrations: the same edits as edits.json, applied to the installed auto-round.")
        chunks[-1] += "\n" + "\n".join(r.rstrip("\n") for r in registrations)
    return PluginSource(imports=format_imports(imports), chunks=chunks)
