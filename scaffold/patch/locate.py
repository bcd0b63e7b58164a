"""Find registries and definitions in a libcst module by name and node kind (never by line number)."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from scaffold.errors import ScaffoldError

_MISSING = object()


@dataclass(frozen=True)
class Where:
    """The file being patched and the AutoRound version it belongs to, for error messages."""

    file: str
    version: str

    def missing(self, what: str) -> ScaffoldError:
        return ScaffoldError(
            f"{what} not found in {self.file} (AutoRound {self.version}); "
            "this AutoRound version is laid out differently from what the patcher knows",
            stage="patch",
        )


def source(module: cst.Module, node: cst.CSTNode) -> str:
    return module.code_for_node(node)


def literal(module: cst.Module, node: cst.CSTNode) -> Any:
    """The value of a literal expression node, or ``_MISSING`` when it is not a literal."""
    try:
        return ast.literal_eval(source(module, node).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _MISSING


def is_literal(value: Any) -> bool:
    return value is not _MISSING


def structure(code: str, mode: str = "eval") -> str:
    """A formatting-independent fingerprint of Python source (quotes, spacing, comments ignored)."""
    text = textwrap.dedent(code).strip()
    try:
        return ast.dump(ast.parse(text, mode=mode))
    except SyntaxError:
        return text


class LineIndex:
    """Start lines of nodes of one module. Counts lines per top-level statement once, then resolves
    positions inside a single statement only (much cheaper than position metadata for a whole file)."""

    def __init__(self, module: cst.Module):
        self.module = module
        self._starts: dict[int, int] | None = None

    def _top_starts(self) -> dict[int, int]:
        if self._starts is None:
            count = sum(self.module.code_for_node(line).count("\n") for line in self.module.header)
            self._starts = {}
            for statement in self.module.body:
                self._starts[id(statement)] = count
                count += self.module.code_for_node(statement).count("\n")
        return self._starts

    def __call__(self, node: cst.CSTNode, top: cst.CSTNode | None) -> int | None:
        start = self._top_starts().get(id(top))
        if start is None:
            return None
        alone = self.module.with_changes(body=[top], header=[], footer=[])
        position = MetadataWrapper(alone, unsafe_skip_copy=True).resolve(PositionProvider).get(node)
        return start + position.start.line if position else None


def module_statements(body: Any, nested: bool = True) -> Iterator[tuple[cst.BaseSmallStatement, cst.CSTNode]]:
    """Every small statement at module level, with the top-level statement holding it.

    With ``nested``, statements inside module-level ``if``/``try``/``with``/``for`` blocks count too
    (registries extended conditionally); function and class bodies never do.
    """
    for top in body:
        for small in _small_statements(top, nested):
            yield small, top


def _small_statements(stmt: cst.CSTNode, nested: bool) -> Iterator[cst.BaseSmallStatement]:
    if isinstance(stmt, cst.SimpleStatementLine):
        yield from stmt.body
        return
    if not nested or isinstance(stmt, cst.FunctionDef | cst.ClassDef):
        return
    for block in _blocks(stmt):
        for inner in block.body:
            yield from _small_statements(inner, nested)


def _blocks(stmt: cst.CSTNode) -> Iterator[cst.BaseSuite]:
    for attr in ("body", "orelse", "finalbody"):
        part = getattr(stmt, attr, None)
        if isinstance(part, cst.BaseSuite):
            yield part
        elif isinstance(part, cst.If | cst.Else | cst.Finally):
            yield from _blocks(part) if isinstance(part, cst.If) else [part.body]
    for handler in getattr(stmt, "handlers", ()):
        yield handler.body


def assigned_name(small: cst.BaseSmallStatement) -> str | None:
    """``X`` for ``X = ...`` / ``X: T = ...`` (single plain-name target), else None."""
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
        return target.value if isinstance(target, cst.Name) else None
    if isinstance(small, cst.AnnAssign) and small.value is not None:
        return small.target.value if isinstance(small.target, cst.Name) else None
    return None


def find_definition(module: cst.Module, name: str) -> tuple[cst.CSTNode, cst.BaseExpression] | None:
    """The first top-level ``name = <value>`` statement and its value."""
    for small, top in module_statements(module.body, nested=False):
        if assigned_name(small) == name:
            return top, small.value
    return None


def subscript_assignments(module: cst.Module, name: str, nested: bool = True):
    """``name[key] = value`` statements at module level: (key node, Assign node, top-level statement)."""
    for small, top in module_statements(module.body, nested=nested):
        if not (isinstance(small, cst.Assign) and len(small.targets) == 1):
            continue
        target = small.targets[0].target
        if (
            isinstance(target, cst.Subscript)
            and isinstance(target.value, cst.Name)
            and target.value.value == name
            and len(target.slice) == 1
            and isinstance(target.slice[0].slice, cst.Index)
        ):
            yield target.slice[0].slice.value, small, top


def top_level_definition(module: cst.Module, name: str) -> cst.CSTNode | None:
    """The top-level statement defining ``name``: an assignment, ``def`` or ``class``."""
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef | cst.ClassDef) and stmt.name.value == name:
            return stmt
    found = find_definition(module, name)
    return found[0] if found else None


def references(node: cst.CSTNode, name: str) -> bool:
    """Whether ``name`` is used anywhere inside ``node``."""
    found = False

    class Visitor(cst.CSTVisitor):
        def visit_Name(self, visited: cst.Name) -> bool:
            nonlocal found
            found = found or visited.value == name
            return False

    node.visit(Visitor())
    return found


def top_level_function(module: cst.Module, name: str) -> cst.FunctionDef | None:
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == name:
            return stmt
    return None


def call_name(node: cst.CSTNode) -> str | None:
    """``f`` for ``f(...)`` and ``mod.f(...)``."""
    if not isinstance(node, cst.Call):
        return None
    func = node.func
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return None


def top_level_calls(module: cst.Module, name: str) -> list[tuple[cst.Call, cst.SimpleStatementLine]]:
    """Expression statements ``name(...)`` directly at module level."""
    found = []
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Expr) and call_name(small.value) == name:
                    found.append((small.value, stmt))
    return found


def parse_expression(code: str, what: str) -> cst.BaseExpression:
    try:
        return cst.parse_expression(textwrap.dedent(code).strip())
    except cst.ParserSyntaxError as exc:
        raise ScaffoldError(f"{what} is not a valid Python expression: {code!r} ({exc.message})", "patch") from None


def parse_statements(code: str, what: str) -> list[cst.BaseStatement]:
    try:
        return list(cst.parse_module(textwrap.dedent(code).strip("\n") + "\n").body)
    except cst.ParserSyntaxError as exc:
        raise ScaffoldError(f"{what} is not valid Python: {exc.message}", "patch") from None
