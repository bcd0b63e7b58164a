"""The one registry of failure modes: each pairs a detector module with a generator module.

To support a new failure mode, add a ``Mode`` member in ``findings.py``, a detector in
``scaffold/detectors/`` (``detect(ctx) -> list[Finding]``) and a generator in
``scaffold/generators/`` (``generate(finding, plan)``), then list them here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from scaffold.findings import Mode


@dataclass(frozen=True)
class FailureMode:
    mode: Mode
    detector: str  # module path with ``detect(ctx) -> list[Finding]``
    generator: str | None  # module path with ``generate(finding, plan) -> None``

    def detector_module(self) -> ModuleType:
        return importlib.import_module(self.detector)

    def generator_module(self) -> ModuleType | None:
        return importlib.import_module(self.generator) if self.generator else None


def _mode(mode: Mode, generator: bool = True) -> FailureMode:
    return FailureMode(
        mode, f"scaffold.detectors.{mode.value}", f"scaffold.generators.{mode.value}" if generator else None
    )


# Order matters: static detectors first, then probes that need the tiny instance.
FAILURE_MODES: list[FailureMode] = [
    _mode(Mode.BLOCK_DETECTION),
    _mode(Mode.LAYER_TYPES),
    _mode(Mode.FUSED_MOE),
    _mode(Mode.MLLM_MISDETECTION),
    _mode(Mode.FORWARD_COVERAGE),
    _mode(Mode.SHARED_CACHE_KEYS),
    _mode(Mode.BLOCK_REPLAY),
    _mode(Mode.IGNORE_LAYERS),
    _mode(Mode.STOCK_RUN),  # last: reads the findings before it (ctx.findings)
]


def by_mode(mode: Mode) -> FailureMode:
    for failure_mode in FAILURE_MODES:
        if failure_mode.mode is mode:
            return failure_mode
    raise KeyError(mode)
