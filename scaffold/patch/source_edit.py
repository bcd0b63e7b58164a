"""Apply the edits of one file to its source text, in memory."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst

from scaffold.errors import ScaffoldError
from scaffold.patch.codemods import Codemod
from scaffold.patch.locate import LineIndex, Where
from scaffold.patch.outcome import APPLIED, CONFLICT, PRESENT, REPLACED, EditStatus
from scaffold.plan.model import Edit


@dataclass
class SourceEdit:
    """The new source of one file and what happened to each of its edits."""

    code: str
    statuses: list[EditStatus] = field(default_factory=list)


@functools.lru_cache(maxsize=32)
def _parse(code: str) -> tuple[cst.Module, LineIndex]:
    """The (immutable) libcst tree of ``code`` and its line lookup; repeated runs on one text parse once."""
    module = cst.parse_module(code)
    return module, LineIndex(module)


def edit_source(code: str, edits: Sequence[Edit], where: Where, *, force: bool = False) -> SourceEdit:
    """Apply ``edits`` to ``code``; entries already there (by value) are reported, differing ones conflict.

    Conflicts are judged against the original text, so their line numbers are the file's own. With
    ``force`` a conflicting entry is replaced; without it the conflicting edit is left out.
    """
    try:
        original, lines = _parse(code)
    except cst.ParserSyntaxError as exc:
        raise ScaffoldError(f"cannot parse {where.file}: {exc.message}", "patch") from None
    module = original
    statuses: dict[int, EditStatus] = {}
    for index in _application_order(edits):
        codemod = edits[index].codemod(where)
        before = codemod.find(original)
        if before is not None and before.same:
            statuses[index] = _status(codemod, PRESENT, lines(before.node, before.top))
            continue
        if before is not None and not force:
            statuses[index] = _status(codemod, CONFLICT, lines(before.node, before.top), "differs from the plan")
            continue
        module, statuses[index] = _apply(codemod, module, replacing=before is not None)
        if before is not None:
            statuses[index].line = lines(before.node, before.top)
    ordered = [statuses[index] for index in range(len(edits))]
    return SourceEdit(code if module is original else module.code, ordered)


def _application_order(edits: Sequence[Edit]) -> list[int]:
    """Indexes of ``edits``, kinds that ``apply_last`` (new functions: placed before a use another edit adds) last."""
    return sorted(range(len(edits)), key=lambda index: edits[index].apply_last)


def _apply(codemod: Codemod, module: cst.Module, *, replacing: bool) -> tuple[cst.Module, EditStatus]:
    current = codemod.find(module)
    if current is not None and current.same:  # an earlier edit of the same plan added it
        return module, _status(codemod, PRESENT, None, "duplicate edit in the plan")
    if current is not None:
        return codemod.replace(module, current), _status(codemod, REPLACED if replacing else CONFLICT)
    return codemod.insert(module), _status(codemod, APPLIED)


def _status(codemod: Codemod, status: str, line: int | None = None, detail: str = "") -> EditStatus:
    return EditStatus(codemod.edit.kind, codemod.where.file, codemod.target, status, line, detail)
