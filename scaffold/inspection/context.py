"""What every detector gets: the resolved target, its meta skeleton and, lazily, a tiny instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from scaffold.errors import first_line
from scaffold.resolve.target import ResolvedTarget

if TYPE_CHECKING:
    from scaffold.tiny import TinyModel


class ProbeUnavailable(Exception):
    """Dynamic probes were disabled or the tiny instance could not be built."""


@dataclass
class InspectContext:
    target: ResolvedTarget
    meta_model: nn.Module
    group_size: int = 128
    dynamic: bool = True
    notes: list[str] = field(default_factory=list)
    _tiny: Any = None
    _tiny_error: str | None = None
    probe_results: dict[str, Any] = field(default_factory=dict)  # results dynamic detectors share, by probe name
    findings: list[Any] = field(default_factory=list)  # what the detectors run so far found (scaffold.inspection.stage)

    @property
    def config(self) -> Any:
        return self.target.config

    @property
    def model_class(self) -> str:
        return type(self.meta_model).__name__

    def tiny(self) -> TinyModel:
        """The tiny random instance (built once), or :class:`ProbeUnavailable`."""
        if not self.dynamic:
            raise ProbeUnavailable("dynamic probes disabled (--static)")
        if self._tiny is None and self._tiny_error is None:
            from scaffold.tiny import build_tiny

            try:
                self._tiny = build_tiny(self.target.config, trust_remote_code=self.target.trust_remote_code)
            except Exception as exc:  # noqa: BLE001 - a probe that cannot run is a note, not a crash
                self._tiny_error = first_line(exc)
                self.notes.append(f"tiny instance unavailable, dynamic probes skipped: {self._tiny_error}")
        if self._tiny is None:
            raise ProbeUnavailable(self._tiny_error or "tiny instance unavailable")
        return self._tiny


def tiny_or_none(ctx: InspectContext | None) -> TinyModel | None:
    """``ctx.tiny()``, or None without a context or when dynamic probes cannot run."""
    if ctx is None:
        return None
    try:
        return ctx.tiny()
    except ProbeUnavailable:
        return None
