"""Typed findings: what ``inspect`` found and ``new-arch`` turns into code.

The JSON form (``InspectReport.to_json``) is versioned by ``SCHEMA_VERSION``; bump the
minor number for added fields and the major number for changed or removed ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from scaffold.measure.precision import STRUCTURAL_PRECISION

SCHEMA_VERSION = "1.1"  # 1.1: inconclusive, precision (and host in the CLI's --json output)


class Severity(str, Enum):
    FAILS = "fails"  # AutoRound crashes or quantizes nothing useful
    SILENT = "silently-skips-weights"  # AutoRound runs but leaves weights unquantized
    OK = "ok"  # informational: works, nothing to fix


class Mode(str, Enum):
    """Failure modes; each is a package ``scaffold/modes/<mode>/`` registered in ``scaffold/modes/__init__.py``."""

    BLOCK_DETECTION = "block_detection"
    LAYER_TYPES = "layer_types"
    FUSED_MOE = "fused_moe"
    FORWARD_COVERAGE = "forward_coverage"
    SHARED_CACHE_KEYS = "shared_cache_keys"
    BLOCK_REPLAY = "block_replay"
    IGNORE_LAYERS = "ignore_layers"
    MLLM_MISDETECTION = "mllm_misdetection"
    TIED_WEIGHTS_KEYS = "tied_weights_keys"
    SAVE_CONVERSION = "save_conversion"
    STOCK_RUN = "stock_run"  # stock AutoRound fails on the tiny instance and no other mode explains it


@dataclass
class Finding:
    """One reason AutoRound would fail or under-quantize, with the evidence for it."""

    mode: Mode
    severity: Severity
    summary: str  # one sentence a reviewer reads first
    fix: str  # what new-arch generates / what a human should do
    modules: list[str] = field(default_factory=list)  # module paths involved
    classes: list[str] = field(default_factory=list)  # their class names
    evidence: dict[str, Any] = field(default_factory=dict)  # shapes, probe results, exception text
    probe: str = "static"  # "static" (meta skeleton) or "tiny" (dynamic probe on the tiny instance)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mode"] = self.mode.value
        data["severity"] = self.severity.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        data = dict(data)
        data["mode"] = Mode(data["mode"])
        data["severity"] = Severity(data["severity"])
        return cls(**data)


@dataclass
class StackCoverage:
    """Linear-like weight parameters of one block stack and the share AutoRound would quantize."""

    stack: str
    blocks: int
    linear_params: int
    quantizable_params: int
    quantizable_layers: int
    linear_layers: int
    where_unquantized: dict[str, int] = field(default_factory=dict)  # reason -> parameters

    @property
    def share(self) -> float:
        return self.quantizable_params / self.linear_params if self.linear_params else 0.0


@dataclass
class InspectReport:
    """Everything ``scaffold inspect`` knows about a target (``--json`` output)."""

    target: str
    model_type: str
    model_class: str
    config_class: str
    parameters: int
    modules: int
    autoround_blocks: list[list[str]]
    block_stacks: list[dict[str, Any]]
    coverage: list[StackCoverage]
    findings: list[Finding]
    versions: dict[str, str]
    dynamic: bool  # whether dynamic probes ran on a tiny instance
    tiny: dict[str, Any] = field(default_factory=dict)  # what the tiny instance was shrunk to
    notes: list[str] = field(default_factory=list)
    # why dynamic probes could not run (the tiny instance failed to build): the verdict is then inconclusive
    inconclusive: str | None = None
    precision: str = STRUCTURAL_PRECISION  # what the replay and equivalence probes computed in, on every machine
    # stock AutoRound on the tiny instance, float32 (measure.stock.StockRun without the host's amp dtype); None: no run
    stock: dict[str, Any] | None = None
    schema_version: str = SCHEMA_VERSION

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is not Severity.OK]

    def model_share(self) -> float:
        total = sum(c.linear_params for c in self.coverage)
        return sum(c.quantizable_params for c in self.coverage) / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["findings"] = [f.to_dict() for f in self.findings]
        for cov, raw in zip(self.coverage, data["coverage"], strict=True):
            raw["share"] = round(cov.share, 6)
        data["model_share"] = round(self.model_share(), 6)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InspectReport:
        data = dict(data)
        data.pop("model_share", None)
        data.pop("host", None)  # the CLI's --json adds the host's precision; not part of the report
        data["findings"] = [Finding.from_dict(f) for f in data["findings"]]
        data["coverage"] = [StackCoverage(**{k: v for k, v in c.items() if k != "share"}) for c in data["coverage"]]
        return cls(**data)
