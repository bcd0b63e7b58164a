"""One codemod per edit kind (each kind names its own: ``EditKind.codemod``).

Each finds what is already there, inserts what is not, or replaces on force.

Every codemod works on a whole libcst module and returns a new one; comparisons are structural
(string keys by value, code by normalised ``ast.dump``), so quoting and layout never matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from scaffold.errors import ScaffoldError
from scaffold.patch import layout
from scaffold.patch.locate import (
    Where,
    call_name,
    find_definition,
    is_literal,
    literal,
    module_statements,
    parse_expression,
    parse_statements,
    references,
    source,
    structure,
    subscript_assignments,
    top_level_calls,
    top_level_definition,
    top_level_function,
)
from scaffold.plan.model import DictEntry, Edit, HandlerBranch, IgnoreRule, SequenceItem, TopLevelFunction


@dataclass
class Existing:
    """What the checkout already has for an edit: the node, and whether it matches the edit."""

    node: cst.CSTNode
    same: bool
    top: cst.CSTNode | None = None  # the top-level statement holding ``node``


class Codemod:
    """Base: subclasses implement ``target``, ``find``, ``insert`` and (for force) ``replace``."""

    def __init__(self, edit: Edit, where: Where):
        self.edit = edit
        self.where = where

    @property
    def target(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def find(self, module: cst.Module) -> Existing | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def insert(self, module: cst.Module) -> cst.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    def replace(self, module: cst.Module, existing: Existing) -> cst.Module:
        """Default for force: add the new definition after the differing one."""
        return self.insert(module)


def _replace(module: cst.Module, top: cst.CSTNode, old: cst.CSTNode, new: cst.CSTNode) -> cst.Module:
    """``module`` with ``old`` (inside the top-level statement ``top``) replaced; only ``top`` is traversed."""
    replacement = new if top is old else top.deep_replace(old, new)
    return module.with_changes(body=[replacement if stmt is top else stmt for stmt in module.body])


def _insert_statements(module: cst.Module, index: int, statements: list[cst.BaseStatement]) -> cst.Module:
    body = list(module.body)
    return module.with_changes(body=[*body[:index], *statements, *body[index:]])


class AddDictEntry(Codemod):
    """``REGISTRY["key"] = value``: into the dict literal, or as a statement where the registry has none."""

    edit: DictEntry

    @property
    def target(self) -> str:
        return f"{self.edit.registry}[{self.edit.key!r}]"

    def _require(self, module: cst.Module) -> tuple[cst.CSTNode, cst.Dict] | None:
        """The registry's dict literal, or None when it is only extended by ``REG[k] = v`` statements."""
        found = find_definition(module, self.edit.registry)
        if found is not None and isinstance(found[1], cst.Dict):
            return found
        if not any(subscript_assignments(module, self.edit.registry)):
            kind = f" (found {type(found[1]).__name__})" if found else ""
            raise self.where.missing(f"dict registry {self.edit.registry}{kind}")
        return None

    def _same_value(self, module: cst.Module, value: cst.BaseExpression) -> bool:
        return structure(source(module, value)) == structure(self.edit.value)

    def find(self, module: cst.Module) -> Existing | None:
        found = self._require(module)
        if found is not None:
            for element in found[1].elements:
                if isinstance(element, cst.DictElement) and literal(module, element.key) == self.edit.key:
                    return Existing(element, self._same_value(module, element.value), found[0])
        for key, assign, top in subscript_assignments(module, self.edit.registry):
            if literal(module, key) == self.edit.key:
                return Existing(assign, self._same_value(module, assign.value), top)
        return None

    def insert(self, module: cst.Module) -> cst.Module:
        value = parse_expression(self.edit.value, f"value of {self.target}")
        found = self._require(module)
        if found is None:
            return self._insert_statement(module, value)
        top, node = found
        quote = layout.quote_style([e.key for e in node.elements if isinstance(e, cst.DictElement)])
        template = next((e for e in reversed(node.elements) if isinstance(e, cst.DictElement)), None)
        new = cst.DictElement(key=cst.SimpleString(layout.quoted(self.edit.key, quote)), value=value)
        if template is not None:
            new = new.with_changes(
                whitespace_before_colon=template.whitespace_before_colon,
                whitespace_after_colon=template.whitespace_after_colon,
            )
        return _replace(module, top, node, layout.append_element(node, new))

    def _insert_statement(self, module: cst.Module, value: cst.BaseExpression) -> cst.Module:
        assignments = list(subscript_assignments(module, self.edit.registry))
        key_nodes = [key for key, _assign, _top in assignments]
        code = f"{self.edit.registry}[{layout.quoted(self.edit.key, layout.quote_style(key_nodes))}] = 0\n"
        statement = cst.parse_statement(code)
        statement = statement.with_changes(body=[statement.body[0].with_changes(value=value)])
        index = list(module.body).index(assignments[-1][2]) + 1
        return _insert_statements(module, index, [statement])

    def replace(self, module: cst.Module, existing: Existing) -> cst.Module:
        value = parse_expression(self.edit.value, f"value of {self.target}")
        return _replace(module, existing.top, existing.node, existing.node.with_changes(value=value))


class AddSequenceItem(Codemod):
    """A string added to a tuple/list/set constant (``INNER_SUPPORTED_LAYER_TYPES``, ...)."""

    edit: SequenceItem

    @property
    def target(self) -> str:
        return f"{self.edit.registry} += {self.edit.item!r}"

    def _literal(self, module: cst.Module) -> tuple[cst.CSTNode, cst.Tuple | cst.List | cst.Set]:
        found = find_definition(module, self.edit.registry)
        if found is None:
            raise self.where.missing(f"tuple/list/set {self.edit.registry}")
        top, value = found
        if not isinstance(value, cst.Tuple | cst.List | cst.Set):
            raise self.where.missing(f"tuple/list/set literal {self.edit.registry} (found {type(value).__name__})")
        return top, value

    def find(self, module: cst.Module) -> Existing | None:
        top, node = self._literal(module)
        for element in node.elements:
            if literal(module, element.value) == self.edit.item:
                return Existing(element, True, top)
        for small, statement in module_statements(module.body):
            if self.edit.item in self._added_by(module, small):
                return Existing(small, True, statement)
        return None

    def _added_by(self, module: cst.Module, small: cst.BaseSmallStatement) -> list:
        """Items a later statement adds: ``R += (...)``, ``R = R + (...)``, ``R.append/add/extend(...)``."""
        name = self.edit.registry
        expr = None
        if isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name) and small.target.value == name:
            expr = small.value
        elif isinstance(small, cst.Assign) and isinstance(small.value, cst.BinaryOperation):
            target = small.targets[0].target
            if isinstance(target, cst.Name) and target.value == name:
                expr = small.value.right
        elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            func = small.value.func
            if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == name:
                args = small.value.args
                if func.attr.value in ("append", "add") and args:
                    return [literal(module, args[0].value)]
                if func.attr.value in ("extend", "update") and args:
                    expr = args[0].value
        value = literal(module, expr) if expr is not None else None
        return list(value) if isinstance(value, tuple | list | set | frozenset) else []

    def insert(self, module: cst.Module) -> cst.Module:
        top, node = self._literal(module)
        quote = layout.quote_style([e.value for e in node.elements])
        new = cst.Element(value=cst.SimpleString(layout.quoted(self.edit.item, quote)))
        return _replace(module, top, node, layout.append_element(node, new))


class AddTopLevelFunction(Codemod):
    """A module-level function: before ``before`` (registry, function or class), else before its first use."""

    edit: TopLevelFunction

    @property
    def target(self) -> str:
        return f"def {self.edit.name}"

    def _function(self) -> cst.FunctionDef:
        statements = parse_statements(self.edit.code, f"function {self.edit.name}")
        if len(statements) != 1 or not isinstance(statements[0], cst.FunctionDef):
            raise ScaffoldError(f"code of {self.target} must be exactly one function definition", "patch")
        if statements[0].name.value != self.edit.name:
            raise ScaffoldError(f"code of {self.target} defines {statements[0].name.value}", "patch")
        return statements[0]

    def find(self, module: cst.Module) -> Existing | None:
        existing = top_level_function(module, self.edit.name)
        if existing is None:
            if self.edit.before:
                self._index(module)  # a missing anchor is an error even in check mode
            return None
        same = structure(source(module, existing), "exec") == structure(self.edit.code, "exec")
        return Existing(existing, same, existing)

    def _index(self, module: cst.Module) -> int:
        """Before ``before`` (a registry, function or class); else before the first top-level use; else last."""
        body = list(module.body)
        if self.edit.before:
            anchor = top_level_definition(module, self.edit.before)
            if anchor is None:
                raise self.where.missing(f"{self.edit.before} (to insert {self.target} before it)")
            return body.index(anchor)
        return next((i for i, stmt in enumerate(body) if references(stmt, self.edit.name)), len(body))

    def insert(self, module: cst.Module) -> cst.Module:
        function = self._function()
        index = self._index(module)
        body = list(module.body)
        if index == len(body):
            return _insert_statements(module, index, [function.with_changes(leading_lines=layout.blank_lines(2))])
        following = body[index]
        detached, attached = layout.split_leading_lines(following.leading_lines)
        function = function.with_changes(leading_lines=layout.at_least_blank_lines(detached, 2))
        following = following.with_changes(leading_lines=[*layout.blank_lines(2), *attached])
        return module.with_changes(body=[*body[:index], function, following, *body[index + 1 :]])

    def replace(self, module: cst.Module, existing: Existing) -> cst.Module:
        function = self._function().with_changes(leading_lines=existing.node.leading_lines)
        return _replace(module, existing.node, existing.node, function)


def _model_type_comparisons(test: cst.BaseExpression) -> list[tuple[str, cst.BaseExpression]]:
    """``(compared string, the model_type expression)`` for every ``model_type == "x"`` / ``in (...)`` in test."""
    found: list[tuple[str, cst.BaseExpression]] = []

    class Visitor(cst.CSTVisitor):
        def visit_Comparison(self, node: cst.Comparison) -> None:
            left = node.left
            for target in node.comparisons:
                right = target.comparator
                if isinstance(target.operator, cst.Equal):
                    for subject, other in ((left, right), (right, left)):
                        if _is_model_type(subject) and isinstance(other, cst.SimpleString):
                            found.append((other.evaluated_value, subject))
                elif isinstance(target.operator, cst.In) and _is_model_type(left):
                    if isinstance(right, cst.Tuple | cst.List | cst.Set):
                        for element in right.elements:
                            if isinstance(element.value, cst.SimpleString):
                                found.append((element.value.evaluated_value, left))
                left = right

    test.visit(Visitor())
    return found


def _is_model_type(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Name):
        return node.value.endswith("model_type")
    if isinstance(node, cst.Attribute):
        return node.attr.value.endswith("model_type")
    return False


class AddHandlerBranch(Codemod):
    """``if model_type == "x": ...`` appended after the last model-type branch of ``_handle_special_model``."""

    edit: HandlerBranch

    @property
    def target(self) -> str:
        return f"{self.edit.function}: if model_type == {self.edit.model_type!r}"

    def _function(self, module: cst.Module) -> cst.FunctionDef:
        function = top_level_function(module, self.edit.function)
        if function is None:
            raise self.where.missing(f"function {self.edit.function}")
        return function

    def find(self, module: cst.Module) -> Existing | None:
        function = self._function(module)
        branches: list[cst.If] = []

        class Visitor(cst.CSTVisitor):
            def visit_If(self, node: cst.If) -> None:
                branches.append(node)

        function.visit(Visitor())
        wanted = structure(self.edit.body, "exec")
        for branch in branches:
            if any(value == self.edit.model_type for value, _ in _model_type_comparisons(branch.test)):
                body = cst.Module(body=branch.body.body)
                return Existing(branch, structure(body.code, "exec") == wanted, function)
        return None

    def insert(self, module: cst.Module) -> cst.Module:
        function = self._function(module)
        statements = list(function.body.body)
        subject, quote, index = "model_type", '"', None
        for position, stmt in enumerate(statements):
            comparisons = _model_type_comparisons(stmt.test) if isinstance(stmt, cst.If) else []
            if comparisons:
                index = position + 1
                subject = source(module, comparisons[0][1])
                quote = layout.quote_style([c for c in _strings(stmt.test)])
        if index is None:
            index = len(statements) - (1 if statements and _is_return(statements[-1]) else 0)
        body = parse_statements(self.edit.body, f"body of {self.target}")
        test = parse_expression(f"{subject} == {layout.quoted(self.edit.model_type, quote)}", self.target)
        branch = cst.If(test=test, body=layout.indented_block(body))
        new_body = function.body.with_changes(body=[*statements[:index], branch, *statements[index:]])
        return _replace(module, function, function, function.with_changes(body=new_body))

    def replace(self, module: cst.Module, existing: Existing) -> cst.Module:
        """Force: a branch for this model type alone gets the new body; a shared one is left and a new one added."""
        branch = existing.node
        if {value for value, _ in _model_type_comparisons(branch.test)} != {self.edit.model_type}:
            return self.insert(module)
        body = layout.indented_block(parse_statements(self.edit.body, f"body of {self.target}"))
        return _replace(module, existing.top, branch, branch.with_changes(body=body))


def _strings(node: cst.CSTNode) -> list[cst.SimpleString]:
    found: list[cst.SimpleString] = []

    class Visitor(cst.CSTVisitor):
        def visit_SimpleString(self, string: cst.SimpleString) -> None:
            found.append(string)

    node.visit(Visitor())
    return found


def _is_return(stmt: cst.BaseStatement) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and any(isinstance(s, cst.Return) for s in stmt.body)


class AddIgnoreRule(Codemod):
    """A module-level ``register_ignore_layers(...)`` call, after the existing ones."""

    edit: IgnoreRule
    function = "register_ignore_layers"

    @property
    def target(self) -> str:
        return f"{self.function}(ModelTypeMatcher({self.edit.model_type!r}))"

    def _calls(self, module: cst.Module) -> list[tuple[cst.Call, cst.SimpleStatementLine]]:
        calls = top_level_calls(module, self.function)
        if not calls and top_level_function(module, self.function) is None:
            raise self.where.missing(f"{self.function} rules")
        return calls

    def find(self, module: cst.Module) -> Existing | None:
        wanted = structure(self.edit.call)
        for call, stmt in self._calls(module):
            if self.edit.model_type in _matched_model_types(module, call):
                return Existing(stmt, structure(source(module, call)) == wanted, stmt)
        return None

    def _statement(self) -> cst.SimpleStatementLine:
        call = parse_expression(self.edit.call, f"ignore rule for {self.edit.model_type}")
        if call_name(call) != self.function:
            raise ScaffoldError(f"ignore rule for {self.edit.model_type} must be a {self.function}(...) call", "patch")
        return cst.SimpleStatementLine(body=[cst.Expr(call)])

    def insert(self, module: cst.Module) -> cst.Module:
        calls = self._calls(module)
        body = list(module.body)
        comment = cst.EmptyLine(comment=cst.Comment(f"# {self.edit.model_type}"))
        statement = self._statement().with_changes(leading_lines=[cst.EmptyLine(), comment])
        if calls:
            index = body.index(calls[-1][1]) + 1
        else:
            index = body.index(top_level_function(module, self.function)) + 1
            statement = statement.with_changes(leading_lines=[*layout.blank_lines(2), comment])
        return _insert_statements(module, index, [statement])

    def replace(self, module: cst.Module, existing: Existing) -> cst.Module:
        statement = self._statement().with_changes(leading_lines=existing.node.leading_lines)
        return _replace(module, existing.node, existing.node, statement)


def _matched_model_types(module: cst.Module, call: cst.Call) -> list[str]:
    """First arguments of ``ModelTypeMatcher(...)`` calls inside ``call``."""
    found: list[str] = []

    class Visitor(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            if call_name(node) == "ModelTypeMatcher" and node.args:
                value = literal(module, node.args[0].value)
                if is_literal(value) and isinstance(value, str):
                    found.append(value)

    call.visit(Visitor())
    return found
