"""One survey row per model type, stored as JSON lines; rows are keyed by type and tool versions."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaffold.measure import stock

# Stock statuses
OK, CRASH, UNDER_QUANTIZED = stock.OK, stock.CRASH, stock.UNDER_QUANTIZED
TIMEOUT = "timeout"
WORKER_CRASH = "worker-crash"
SKIPPED = "skipped"
# AutoRound takes a truly multimodal model (vision/audio towers) to its MLLM path, which needs the model's processor
# and image/audio calibration data; a tiny random instance has neither, so the survey cannot run it text-only.
MULTIMODAL = "multimodal"
# After-scaffold statuses (OK, SKIPPED, TIMEOUT and WORKER_CRASH too)
FAILED = "failed"
NEEDS_HUMAN = "needs-human"

FULL_SHARE = stock.FULL_SHARE  # below this share of the block weights a stock run counts as under-quantized
# A fix counts only when the generated test's export packs at least this share (and more than stock did).
FIXED_SHARE = 0.95
# The versions a row depends on (the tool's commit among them); a re-run skips rows recorded under the same ones.
VERSION_KEYS = ("transformers", "auto_round", "autoround_scaffold", "scaffold_commit")


@dataclass
class SurveyRow:
    """What the survey learned about one model type; ``phase`` says how far its worker got."""

    model_type: str
    model_class: str = ""
    tiny_build: str = ""  # "ok", or the error text (the survey's own failure, not AutoRound's)
    stock: str = SKIPPED  # ok | crash | under-quantized | timeout | worker-crash | multimodal | skipped
    stock_detail: str = ""  # "ExceptionClass: message" for a crash, the unquantized owners when under-quantized
    stock_share: float | None = None  # packed share of the block weight parameters in the stock export
    findings: list[str] = field(default_factory=list)  # non-ok inspect findings as "mode:severity"
    # one entry per block_replay finding: block, cause, the inputs that differ, max_abs_err / exception
    replay_evidence: list[dict[str, Any]] = field(default_factory=list)
    after_scaffold: str = SKIPPED  # ok | failed | needs-human | timeout | worker-crash | skipped
    after_detail: str = ""  # why it failed / what is left by hand
    todos: int = 0  # TODO(scaffold) markers new-arch left for a human
    generated: int = 0  # findings new-arch generated code for
    after_share: float | None = None  # packed block share in the generated test's export (its recorded verdict)
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    commit: str = ""  # the tool's git commit (or "v<version>" outside a checkout)
    dirty: bool = False  # the tool's sources had uncommitted changes
    timestamp: str = ""  # UTC, when the row was started
    host: dict[str, Any] = field(default_factory=dict)  # cpu, bf16, device, amp_dtype AutoRound tuned in
    phase: str = "start"  # the stage the worker was in when the row was last written ("done" at the end)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SurveyRow:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    @property
    def version_key(self) -> tuple[str, ...]:
        return version_key(self.versions)

    @property
    def outcome(self) -> str:
        """The row's summary class: ok | fixed | needs-human | survey-failure | not-surveyed (multimodal)."""
        if self.tiny_build != OK:
            return "survey-failure"
        if self.stock == MULTIMODAL:
            return "not-surveyed"
        if self.stock == OK:
            return "ok"
        if self.after_scaffold == OK and not self.unproven_fix:
            return "fixed"
        return "needs-human"

    @property
    def unproven_fix(self) -> str:
        """Why a passing generated test does not prove a fix ("" when it does): nothing generated, or its
        export packs under :data:`FIXED_SHARE` or no more than stock did."""
        if self.generated < 1:
            return "nothing generated"
        if self.after_share is None:
            return "no share recorded"
        stock = self.stock_share or 0.0
        if self.after_share < FIXED_SHARE or self.after_share <= stock:
            return f"share {self.after_share:.1%} after (stock {stock:.1%})"
        return ""

    @property
    def human_reason(self) -> str:
        """A short reason to group the rows that need a human by."""
        if self.tiny_build != OK:
            return f"tiny build: {self.tiny_build.split(':')[0] or 'failed'}"
        if self.after_scaffold == NEEDS_HUMAN:
            return "TODOs left by new-arch"
        if self.after_scaffold == SKIPPED:
            return f"stock {self.stock}, fix not run"
        if self.after_scaffold == OK:
            return f"generated test passed, fix unproven: {self.unproven_fix.split(' (')[0]}"
        head = self.after_detail.split(":")[0] if self.after_detail else ""
        return f"after-scaffold {self.after_scaffold}" + (f" ({head})" if head else "")


def version_key(versions: dict[str, str]) -> tuple[str, ...]:
    return tuple(versions.get(key, "") for key in VERSION_KEYS)


def read_rows(path: Path) -> list[SurveyRow]:
    """Every row in a results.jsonl (unreadable lines are skipped); empty when the file is absent."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(SurveyRow.from_json(json.loads(line)))
        except (ValueError, TypeError):
            continue
    return rows


def append_row(path: Path, row: SurveyRow) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row.to_json(), sort_keys=True) + "\n")


def latest_rows(rows: list[SurveyRow], versions: dict[str, str] | None = None) -> list[SurveyRow]:
    """The last row per model type (only rows for ``versions`` when given), sorted by model type."""
    wanted = version_key(versions) if versions is not None else None
    latest: dict[str, SurveyRow] = {}
    for row in rows:
        if wanted is None or row.version_key == wanted:
            latest[row.model_type] = row
    return [latest[name] for name in sorted(latest)]
