"""Apply the edits of one file to its source text, in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from scaffold.errors import ScaffoldError
from scaffold.patch.codemods import Codemod, codemod_for
from scaffold.patch.locate import Where
from scaffold.patch.outcome import APPLIED, CONFLICT, PRESENT, REPLACED, EditStatus
from scaffold.plan import Edit


@dataclass
class SourceEdit:
    """The new source of one file and what happened to each of its edits."""

    code: str
    statuses: list[EditStatus] = field(default_factory=list)


class _Lines:
    """Start lines of nodes of one module, resolved on first use."""

    def __init__(self, module: cst.Module):
        self.module = module
        self._positions = None

    def __call__(self, node: cst.CSTNode) -> int | None:
        if self._positions is None:
            self._positions = MetadataWrapper(self.module, unsafe_skip_copy=True).resolve(PositionProvider)
        position = self._positions.get(node)
        return position.start.line if position else None


def edit_source(code: str, edits: Sequence[Edit], where: Where, *, force: bool = False) -> SourceEdit:
    """Apply ``edits`` to ``code``; entries already there (by value) are reported, differing ones conflict.

    Conflicts are judged against the original text, so their line numbers are the file's own. With
    ``force`` a conflicting entry is replaced; without it the conflicting edit is left out.
    """
    try:
        original = cst.parse_module(code)
    except cst.ParserSyntaxError as exc:
        raise ScaffoldError(f"cannot parse {where.file}: {exc.message}", "patch") from None
    lines = _Lines(original)
    module = original
    statuses = []
    for edit in edits:
        codemod = codemod_for(edit, where)
        before = codemod.find(original)
        if before is not None and before.same:
            statuses.append(_status(codemod, PRESENT, lines(before.node)))
            continue
        if before is not None and not force:
            statuses.append(_status(codemod, CONFLICT, lines(before.node), "differs from the plan"))
            continue
        module, status = _apply(codemod, module, replacing=before is not None)
        if before is not None:
            status.line = lines(before.node)
        statuses.append(status)
    return SourceEdit(module.code, statuses)


def _apply(codemod: Codemod, module: cst.Module, *, replacing: bool) -> tuple[cst.Module, EditStatus]:
    current = codemod.find(module)
    if current is not None and current.same:  # an earlier edit of the same plan added it
        return module, _status(codemod, PRESENT, None, "duplicate edit in the plan")
    if current is not None:
        return codemod.replace(module, current), _status(codemod, REPLACED if replacing else CONFLICT)
    return codemod.insert(module), _status(codemod, APPLIED)


def _status(codemod: Codemod, status: str, line: int | None = None, detail: str = "") -> EditStatus:
    return EditStatus(codemod.edit.kind, codemod.where.file, codemod.target, status, line, detail)
