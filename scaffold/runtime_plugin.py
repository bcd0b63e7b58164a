"""Translate a plan into the runtime plugin: ``<slug>_autoround.py`` adapts the pip-installed auto-round.

The translation is mechanical, so the plugin and a patched checkout run the same source:

- ``DictEntry`` -> ``<module>.<REGISTRY>[key] = runtime_value or value``;
- ``SequenceItem`` -> the item added to the tuple/list/set in place (a new tuple is rebound in
  every loaded ``auto_round`` module that imported it by name);
- ``TopLevelFunction`` -> the function, verbatim;
- ``HandlerBranch`` -> the body as a function run after ``_handle_special_model`` for that model
  type (the wrapper is rebound wherever it was imported by name, e.g. ``auto_round/context/model.py``);
- ``IgnoreRule`` -> the call, executed.

Names an edit's code uses but the plugin does not define are imported from the AutoRound module
the edit targets, where the checkout version of the code finds them.
"""

from __future__ import annotations

import ast
import builtins
import symtable
from dataclasses import dataclass, field

from scaffold.generators import identifier, indent, py_str
from scaffold.import_block import format_imports
from scaffold.plan import DictEntry, Edit, HandlerBranch, IgnoreRule, Plan, SequenceItem, TopLevelFunction

BUILTIN_NAMES = frozenset(dir(builtins)) | {"__name__", "__file__"}

REBIND = '''def _rebind(old, new):
    """Point every global and class attribute of the loaded ``auto_round`` modules that holds ``old`` at ``new``."""
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] != "auto_round":
            continue
        for key, value in list(getattr(module, "__dict__", {}).items()):
            if value is old:
                setattr(module, key, new)
            elif isinstance(value, type) and value.__module__ == module_name:
                for attribute, held in list(vars(value).items()):
                    if held is old:
                        setattr(value, attribute, new)
'''

ADD_TO_SEQUENCE = '''def _add_to_sequence(module, name, item):
    """Add ``item`` to the tuple, list or set ``module.<name>``; a new tuple replaces the old one everywhere."""
    current = getattr(module, name)
    if item in current:
        return
    if isinstance(current, set):
        current.add(item)
    elif isinstance(current, list):
        current.append(item)
    else:
        _rebind(current, (*current, item))
'''

ADD_BRANCH = '''def _add_model_type_branch(model_type, branch):
    """Run ``branch(model, model_type)`` at the end of AutoRound's ``_handle_special_model`` for ``model_type``."""
    original = ar_special_model_handler._handle_special_model

    def _handle_special_model(model):
        model = original(model)
        if ar_special_model_handler.resolve_model_type(model) == model_type:
            model = branch(model, model_type)
        return model

    _rebind(original, _handle_special_model)
'''


@dataclass
class PluginSource:
    """The plugin's code, in the order the template writes it."""

    imports: str
    chunks: list[str] = field(default_factory=list)  # top-level statements/defs, two blank lines apart

    def body(self) -> str:
        return "\n\n\n".join(chunk.rstrip("\n") for chunk in self.chunks) + "\n"


def module_name(file: str) -> str:
    """``auto_round/utils/model.py`` -> ``auto_round.utils.model``."""
    return file.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def module_alias(file: str) -> str:
    """The plugin's name for an AutoRound module: ``auto_round/utils/model.py`` -> ``ar_utils_model``."""
    return "ar_" + module_name(file).removeprefix("auto_round.").replace(".", "_")


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


def branch_function_name(edit: HandlerBranch, taken: set[str]) -> str:
    base = f"_handle_{identifier(edit.model_type)}_special_model"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    taken.add(name)
    return name


def branch_function(name: str, edit: HandlerBranch) -> str:
    return (
        f"def {name}(model, model_type):\n"
        f'    """The ``model_type == "{edit.model_type}"`` branch of ``_handle_special_model``."""\n'
        f"{indent(edit.body.strip())}\n"
        "    return model\n"
    )


def _edit_code(edit: Edit) -> str:
    if isinstance(edit, DictEntry):
        return edit.runtime_value or edit.value
    if isinstance(edit, TopLevelFunction):
        return edit.code
    if isinstance(edit, IgnoreRule):
        return edit.call
    if isinstance(edit, HandlerBranch):
        return f"def _branch(model, model_type):\n{indent(edit.body.strip())}\n"
    return ""


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
    functions = [e for e in plan.edits if isinstance(e, TopLevelFunction)]
    for edit in functions:
        chunks.append(edit.code)
        defined.add(edit.name)

    needed: dict[str, set[str]] = {}  # AutoRound module -> names imported from it
    for edit in plan.edits:
        missing = free_globals(_edit_code(edit)) - defined - BUILTIN_NAMES - {"model", "model_type"}
        if missing:
            needed.setdefault(module_name(edit.file), set()).update(missing)
    imports += [f"from {module} import {', '.join(sorted(names))}" for module, names in needed.items()]

    helpers: list[str] = []
    registrations: list[str] = []
    taken = set(defined)
    for edit in plan.edits:
        if isinstance(edit, DictEntry):
            imports.append(f"import {module_name(edit.file)} as {module_alias(edit.file)}")
            value = edit.runtime_value or edit.value
            registrations.append(f"{module_alias(edit.file)}.{edit.registry}[{py_str(edit.key)}] = {value}")
        elif isinstance(edit, SequenceItem):
            imports.append(f"import {module_name(edit.file)} as {module_alias(edit.file)}")
            helpers += [REBIND, ADD_TO_SEQUENCE]
            registrations.append(
                f"_add_to_sequence({module_alias(edit.file)}, {py_str(edit.registry)}, {py_str(edit.item)})"
            )
        elif isinstance(edit, HandlerBranch):
            imports.append("import auto_round.special_model_handler as ar_special_model_handler")
            helpers += [REBIND, ADD_BRANCH]
            name = branch_function_name(edit, taken)
            chunks.append(branch_function(name, edit))
            registrations.append(f"_add_model_type_branch({py_str(edit.model_type)}, {name})")
        elif isinstance(edit, IgnoreRule):
            registrations.append(edit.call)
    if REBIND in helpers:
        imports.append("import sys")
    chunks += list(dict.fromkeys(helpers))
    if registrations:
        chunks.append("# Registrations: the same edits as edits.json, applied to the installed auto-round.")
        chunks[-1] += "\n" + "\n".join(r.rstrip("\n") for r in registrations)
    return PluginSource(imports=format_imports(imports), chunks=chunks)
