"""What applying a plan reports: one :class:`EditStatus` per edit and a :class:`PatchResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

APPLIED = "applied"
PRESENT = "already present"
CONFLICT = "conflict"
REPLACED = "replaced"  # a conflict overridden with force
SKIPPED = "skipped"

CHANGING = (APPLIED, REPLACED)


@dataclass
class EditStatus:
    """The outcome of one edit (or generated file, or README row)."""

    kind: str  # dict_entry, sequence_item, function, branch, ignore_rule, file, readme
    file: str  # relative to the checkout root
    target: str  # what was edited, e.g. 'BUILTIN_MODULES["foo"]'
    status: str  # APPLIED, PRESENT, CONFLICT, REPLACED or SKIPPED
    line: int | None = None  # line of the existing definition (conflicts, already present)
    detail: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def one_line(self, label: str | None = None) -> str:
        text = f"{label or self.status:<15} {self.where}  {self.target}"
        return f"{text}  ({self.detail})" if self.detail else text


@dataclass
class PatchResult:
    """What :func:`scaffold.patch.apply_plan` computed and (unless dry-run/check/conflict) wrote."""

    checkout: Path
    autoround_version: str
    diff: str
    statuses: list[EditStatus] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # relative paths written to the checkout
    targets: list[str] = field(default_factory=list)  # relative paths the plan changes (written or not)
    version_note: str = ""  # set when --force let an unsupported auto-round version through

    @property
    def conflicts(self) -> list[EditStatus]:
        return [s for s in self.statuses if s.status == CONFLICT]

    @property
    def pending(self) -> bool:
        """True when the checkout does not yet contain every change of the plan."""
        return bool(self.diff)

    @property
    def blocked(self) -> bool:
        """True when conflicts stopped the patch from being written."""
        return bool(self.conflicts)
