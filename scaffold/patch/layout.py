"""Formatting-preserving insertion into dict/list/tuple/set literals and module bodies (libcst).

The comment of a literal's last entry lives in the closing bracket's ``whitespace_before`` (or in the
trailing comma's ``whitespace_after``); appending moves it back onto that entry. The trailing-comma
style and the one-per-line layout of the literal are kept; a one-line one-element tuple's comma is
syntax, not style: ``("a",)`` becomes ``("a", "b")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

Collection = cst.Dict | cst.List | cst.Tuple | cst.Set
Whitespace = cst.BaseParenthesizableWhitespace


def _opening(node: Collection) -> Whitespace:
    if isinstance(node, cst.Dict | cst.Set):
        return node.lbrace.whitespace_after
    if isinstance(node, cst.List):
        return node.lbracket.whitespace_after
    return node.lpar[0].whitespace_after if node.lpar else cst.SimpleWhitespace("")


def _closing(node: Collection) -> Whitespace:
    if isinstance(node, cst.Dict | cst.Set):
        return node.rbrace.whitespace_before
    if isinstance(node, cst.List):
        return node.rbracket.whitespace_before
    return node.rpar[-1].whitespace_before if node.rpar else cst.SimpleWhitespace("")


def _with_closing(node: Collection, ws: Whitespace) -> Collection:
    if isinstance(node, cst.Dict | cst.Set):
        return node.with_changes(rbrace=node.rbrace.with_changes(whitespace_before=ws))
    if isinstance(node, cst.List):
        return node.with_changes(rbracket=node.rbracket.with_changes(whitespace_before=ws))
    if not node.rpar:
        return node
    return node.with_changes(rpar=[*node.rpar[:-1], node.rpar[-1].with_changes(whitespace_before=ws)])


def _is_multiline(ws: Whitespace) -> bool:
    return isinstance(ws, cst.ParenthesizedWhitespace)


def _without_comment(ws: Whitespace) -> Whitespace:
    """``ws`` with the end-of-line comment on its first line removed."""
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return ws.with_changes(first_line=cst.TrailingWhitespace())
    return ws


def _carry_comment(separator: Whitespace, tail: Whitespace, indent: cst.SimpleWhitespace) -> Whitespace:
    """The separator after the old last entry, keeping that entry's end-of-line comment (found in ``tail``)."""
    if not isinstance(tail, cst.ParenthesizedWhitespace) or tail.first_line.comment is None:
        return separator
    if isinstance(separator, cst.ParenthesizedWhitespace):
        return separator.with_changes(first_line=tail.first_line)
    return cst.ParenthesizedWhitespace(first_line=tail.first_line, indent=True, last_line=indent)


def _element_indent(elements: Sequence[cst.BaseElement | cst.BaseDictElement], opening: Whitespace):
    for ws in [opening, *(e.comma.whitespace_after for e in elements if isinstance(e.comma, cst.Comma))]:
        if isinstance(ws, cst.ParenthesizedWhitespace):
            return ws.last_line
    return cst.SimpleWhitespace("    ")


def _separator(elements: Sequence, opening: Whitespace, indent: cst.SimpleWhitespace) -> Whitespace:
    """Whitespace between two entries, as the literal already uses it."""
    if len(elements) >= 2 and isinstance(elements[-2].comma, cst.Comma):
        ws = elements[-2].comma.whitespace_after
        if isinstance(ws, cst.ParenthesizedWhitespace):
            return ws.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[], last_line=indent)
        return cst.SimpleWhitespace(" ")
    if _is_multiline(opening):
        return cst.ParenthesizedWhitespace(first_line=cst.TrailingWhitespace(), indent=True, last_line=indent)
    return cst.SimpleWhitespace(" ")


def append_element(node: Collection, new: cst.BaseElement | cst.BaseDictElement) -> Collection:
    """``node`` with ``new`` appended as its last entry, in the literal's own layout."""
    elements = list(node.elements)
    if not elements:
        comma = cst.Comma() if isinstance(node, cst.Tuple) else cst.MaybeSentinel.DEFAULT
        return node.with_changes(elements=[new.with_changes(comma=comma)])
    last = elements[-1]
    opening = _opening(node)
    closing = _closing(node)
    indent = _element_indent(elements, opening)
    separator = _separator(elements, opening, indent)
    has_comma = isinstance(last.comma, cst.Comma)
    single_line_singleton = (
        isinstance(node, cst.Tuple)
        and len(elements) == 1
        and not _is_multiline(closing)
        and not (has_comma and _is_multiline(last.comma.whitespace_after))
    )
    if has_comma and not single_line_singleton:
        tail = last.comma.whitespace_after
        if not _is_multiline(tail):  # the comment, if any, is in the closing bracket's whitespace
            carried = _carry_comment(separator, closing, indent)
            last = last.with_changes(comma=last.comma.with_changes(whitespace_after=carried))
            new = new.with_changes(comma=cst.Comma(whitespace_after=tail))
            return _with_closing(node.with_changes(elements=[*elements[:-1], last, new]), _without_comment(closing))
        carried = _carry_comment(separator, tail, indent)
        last = last.with_changes(comma=last.comma.with_changes(whitespace_after=carried))
        new = new.with_changes(comma=cst.Comma(whitespace_after=_without_comment(tail)))
        return node.with_changes(elements=[*elements[:-1], last, new])
    before = last.comma.whitespace_before if has_comma else cst.SimpleWhitespace("")
    last = last.with_changes(
        comma=cst.Comma(whitespace_before=before, whitespace_after=_carry_comment(separator, closing, indent))
    )
    node = node.with_changes(elements=[*elements[:-1], last, new.with_changes(comma=cst.MaybeSentinel.DEFAULT)])
    return _with_closing(node, _without_comment(closing))


def quote_style(strings: Sequence[cst.BaseExpression]) -> str:
    """The quote character the first plain string literal among ``strings`` uses (default ``"``)."""
    for node in strings:
        if isinstance(node, cst.SimpleString):
            quote = node.quote
            if len(quote) == 1:
                return quote
    return '"'


def quoted(text: str, quote: str = '"') -> str:
    """``text`` as a Python string literal in the given quote style."""
    body = text.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n")
    return f"{quote}{body}{quote}"


def split_leading_lines(lines: Sequence[cst.EmptyLine]) -> tuple[list[cst.EmptyLine], list[cst.EmptyLine]]:
    """Split a statement's leading lines into (blank lines and detached comments, comments attached to it)."""
    cut = len(lines)
    while cut > 0 and lines[cut - 1].comment is not None:
        cut -= 1
    return list(lines[:cut]), list(lines[cut:])


def blank_lines(count: int) -> list[cst.EmptyLine]:
    return [cst.EmptyLine() for _ in range(count)]


def at_least_blank_lines(lines: Sequence[cst.EmptyLine], count: int) -> list[cst.EmptyLine]:
    """``lines`` with blank lines added in front until it holds ``count`` of them (PEP 8 spacing)."""
    missing = count - sum(1 for line in lines if line.comment is None)
    return [*blank_lines(max(missing, 0)), *lines]


class _UnindentBlankLines(cst.CSTTransformer):
    def leave_EmptyLine(self, original_node: cst.EmptyLine, updated_node: cst.EmptyLine) -> cst.EmptyLine:
        if updated_node.comment is None:
            return updated_node.with_changes(indent=False, whitespace=cst.SimpleWhitespace(""))
        return updated_node


def indented_block(statements: Sequence[cst.BaseStatement]) -> cst.IndentedBlock:
    """A block of ``statements`` (parsed at module level) whose blank lines carry no indentation."""
    block = cst.IndentedBlock(body=list(statements))
    return block.visit(_UnindentBlankLines())
