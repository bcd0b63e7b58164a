"""Edit kinds: every kind of registry edit a plan makes, each with all that knows about it in one class.

A kind is a frozen dataclass subclassing :class:`EditKind` with a ``kind`` tag (its last field, the tag
``edits.json`` carries). ``__init_subclass__`` registers it in :data:`EDIT_KINDS` and refuses, at class
creation, a kind without a tag, a tag already taken, or a kind missing one of its parts:

- ``describe()``: what it adds, for REPORT.md (:meth:`EditKind.report_line` adds kind and file);
- ``codemod(where)``: the libcst codemod that applies it to a checkout (``scaffold/patch/codemods.py``);
- ``plugin_code()`` and ``runtime_lines(taken)``: what the runtime plugin runs instead of the patched source;
- ``to_json()`` / ``from_json()``: its form in ``edits.json`` (the dataclass fields; inherited).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from scaffold.codegen import identifier, indent, py_str
from scaffold.errors import ScaffoldError

if TYPE_CHECKING:
    from scaffold.patch.codemods import Codemod
    from scaffold.patch.locate import Where

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

HANDLER_IMPORT = "import auto_round.special_model_handler as ar_special_model_handler"
PARTS = ("describe", "codemod", "plugin_code", "runtime_lines")  # what every kind must define itself

EDIT_KINDS: dict[str, type[EditKind]] = {}  # kind tag -> class, in definition order


def module_name(file: str) -> str:
    """``auto_round/utils/model.py`` -> ``auto_round.utils.model``."""
    return file.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def module_alias(file: str) -> str:
    """The plugin's name for an AutoRound module: ``auto_round/utils/model.py`` -> ``ar_utils_model``."""
    return "ar_" + module_name(file).removeprefix("auto_round.").replace(".", "_")


def module_import(file: str) -> str:
    return f"import {module_name(file)} as {module_alias(file)}"


@dataclass
class RuntimeLines:
    """What one edit adds to the runtime plugin."""

    imports: list[str] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)  # shared helper functions (the plugin writes each once)
    chunks: list[str] = field(default_factory=list)  # top-level code of this edit alone
    registrations: list[str] = field(default_factory=list)  # statements run when the plugin is imported


class EditKind:
    """Base of every edit kind; subclasses are frozen dataclasses with a ``file`` field and a ``kind`` tag."""

    kind: ClassVar[str]
    apply_last: ClassVar[bool] = False  # the patcher applies these after the others of the same file

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        tag = cls.__dict__.get("kind")
        if not isinstance(tag, str) or not tag:
            raise TypeError(f'edit kind {cls.__name__} declares no kind tag (kind: str = "...")')
        missing = [name for name in PARTS if getattr(cls, name) is getattr(EditKind, name)]
        if missing:
            raise TypeError(f"edit kind {cls.__name__} lacks {', '.join(missing)}")
        if "file" not in cls.__dict__.get("__annotations__", {}):
            raise TypeError(f"edit kind {cls.__name__} has no file field (the checkout file it edits)")
        known = EDIT_KINDS.get(tag)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"edit kind tag {tag!r} of {cls.__name__} is taken by {known.__name__}")
        EDIT_KINDS[tag] = cls

    def describe(self) -> str:
        """What the edit adds, as REPORT.md shows it (Markdown)."""
        raise NotImplementedError

    def codemod(self, where: Where) -> Codemod:
        """The codemod that applies this edit to the checkout file ``where`` names."""
        raise NotImplementedError

    def plugin_code(self) -> str:
        """Source the plugin runs for this edit: names it uses that the plugin lacks are imported from ``file``."""
        raise NotImplementedError

    def runtime_lines(self, taken: set[str]) -> RuntimeLines:
        """Imports, helpers, code and registrations of the plugin; ``taken``: top-level names already used."""
        raise NotImplementedError

    def plugin_definitions(self) -> dict[str, str]:
        """Top-level definitions (name -> source) the plugin includes before everything else."""
        return {}

    def report_line(self) -> str:
        """One line per edit for REPORT.md."""
        return f"{self.kind.replace('_', ' ')}: {self.describe()} in {self.file}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EditKind:
        """The edit :meth:`to_json` wrote; unknown keys are ignored (newer writers)."""
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in names})
        except TypeError as exc:
            raise ScaffoldError(f"invalid {cls.kind} edit in plan JSON: {exc}", "patch") from None


def edit_from_json(data: dict[str, Any]) -> EditKind:
    """An edit of ``edits.json``, by its ``kind`` tag."""
    kind = data.get("kind")
    if kind not in EDIT_KINDS:
        raise ScaffoldError(f"unknown edit kind {kind!r} in plan JSON (known: {', '.join(EDIT_KINDS)})", "patch")
    return EDIT_KINDS[kind].from_json(data)


@dataclass(frozen=True)
class DictEntry(EditKind):
    """``REGISTRY[key] = value`` in a dict literal (or as a ``D["k"] = v`` statement).

    Plugin: ``<module>.<REGISTRY>[key] = runtime_value or value``.
    """

    file: str
    registry: str  # e.g. BUILTIN_MODULES, SPECIAL_MULTIMODAL_BLOCK, ARCHITECTURE_MODEL_TYPE_MAP
    key: str
    value: str  # Python source of the value, e.g. 'LazyImport("auto_round.modeling.fused_moe.foo")'
    runtime_value: str | None = None  # value the runtime plugin uses instead (e.g. 'LazyImport(__name__)')
    kind: str = "dict_entry"

    def describe(self) -> str:
        return f"`{self.registry}[{py_str(self.key)}]`"

    def codemod(self, where: Where) -> Codemod:
        from scaffold.patch.codemods import AddDictEntry

        return AddDictEntry(self, where)

    def plugin_code(self) -> str:
        return self.runtime_value or self.value

    def runtime_lines(self, taken: set[str]) -> RuntimeLines:
        target = f"{module_alias(self.file)}.{self.registry}[{py_str(self.key)}]"
        return RuntimeLines(imports=[module_import(self.file)], registrations=[f"{target} = {self.plugin_code()}"])


@dataclass(frozen=True)
class SequenceItem(EditKind):
    """A string added to a tuple/list constant (``INNER_SUPPORTED_LAYER_TYPES``, ...).

    Plugin: added in place; a new tuple is rebound in every loaded ``auto_round`` module that imported it by name.
    """

    file: str
    registry: str
    item: str
    kind: str = "sequence_item"

    def describe(self) -> str:
        return f"{py_str(self.item)} in `{self.registry}`"

    def codemod(self, where: Where) -> Codemod:
        from scaffold.patch.codemods import AddSequenceItem

        return AddSequenceItem(self, where)

    def plugin_code(self) -> str:
        return ""

    def runtime_lines(self, taken: set[str]) -> RuntimeLines:
        call = f"_add_to_sequence({module_alias(self.file)}, {py_str(self.registry)}, {py_str(self.item)})"
        return RuntimeLines(
            imports=[module_import(self.file), "import sys"], helpers=[REBIND, ADD_TO_SEQUENCE], registrations=[call]
        )


@dataclass(frozen=True)
class TopLevelFunction(EditKind):
    """A new module-level function, inserted before ``before`` (a registry it is referenced by).

    Plugin: the function, verbatim, before any other code. The patcher adds it after the file's other edits:
    without ``before`` it goes before its first use, which another edit may add.
    """

    file: str
    name: str
    code: str  # full ``def`` source
    before: str | None = None
    kind: str = "function"
    apply_last = True

    def describe(self) -> str:
        return f"`{self.name}()`"

    def codemod(self, where: Where) -> Codemod:
        from scaffold.patch.codemods import AddTopLevelFunction

        return AddTopLevelFunction(self, where)

    def plugin_code(self) -> str:
        return self.code

    def plugin_definitions(self) -> dict[str, str]:
        return {self.name: self.code}

    def runtime_lines(self, taken: set[str]) -> RuntimeLines:
        return RuntimeLines()


@dataclass(frozen=True)
class HandlerBranch(EditKind):
    """``if model_type == "<model_type>": <body>`` appended inside ``function`` (``_handle_special_model``).

    Plugin: the body as a function run after ``_handle_special_model`` for that model type (the wrapper is
    rebound wherever it was imported by name, e.g. ``auto_round/context/model.py``).
    """

    file: str
    function: str
    model_type: str
    body: str  # statements of the branch body, unindented
    kind: str = "branch"

    def describe(self) -> str:
        return f'`{self.function}` branch for `model_type == "{self.model_type}"`'

    def codemod(self, where: Where) -> Codemod:
        from scaffold.patch.codemods import AddHandlerBranch

        return AddHandlerBranch(self, where)

    def plugin_code(self) -> str:
        return f"def _branch(model, model_type):\n{indent(self.body.strip())}\n"

    def function_name(self, taken: set[str]) -> str:
        """A plugin function name for the branch no other top-level name uses (added to ``taken``)."""
        base = f"_handle_{identifier(self.model_type)}_special_model"
        name, number = base, 2
        while name in taken:
            name, number = f"{base}_{number}", number + 1
        taken.add(name)
        return name

    def runtime_lines(self, taken: set[str]) -> RuntimeLines:
        name = self.function_name(taken)
        code = (
            f"def {name}(model, model_type):\n"
            f'    """The ``model_type == "{self.model_type}"`` branch of ``_handle_special_model``."""\n'
            f"{indent(self.body.strip())}\n"
            "    return model\n"
        )
        return RuntimeLines(
            imports=[HANDLER_IMPORT, "import sys"],
            helpers=[REBIND, ADD_BRANCH],
            chunks=[code],
            registrations=[f"_add_model_type_branch({py_str(self.model_type)}, {name})"],
        )


@dataclass(frozen=True)
class IgnoreRule(EditKind):
    """A module-level ``register_ignore_layers(...)`` call for ``model_type``. Plugin: the call, executed."""

    file: str
    model_type: str
    call: str  # full call source
    kind: str = "ignore_rule"

    def describe(self) -> str:
        return f"`register_ignore_layers` rule for `{self.model_type}`"

    def codemod(self, where: Where) -> Codemod:
        from scaffold.patch.codemods import AddIgnoreRule

        return AddIgnoreRule(self, where)

    def plugin_code(self) -> str:
        return self.call

    def runtime_lines(self, taken: set[str]) -> RuntimeLines:
        return RuntimeLines(registrations=[self.call])
