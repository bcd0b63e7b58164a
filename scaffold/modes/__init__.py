"""The registry of failure modes: one package per mode, imported by name and registered in detection order.

Each ``scaffold/modes/<mode>/`` declares a :class:`~scaffold.modes.contract.ModeSpec` (detector, generator,
check, corpus fixture), validated when it is created; a missing part or a misspelt package fails at import.
``scaffold dev add-mode NAME`` writes a new mode's skeleton and registers it here (docs/adding-a-mode.md).
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from scaffold.modes import (
    block_detection,
    block_replay,
    forward_coverage,
    fused_moe,
    ignore_layers,
    layer_types,
    mllm_misdetection,
    save_conversion,
    shared_cache_keys,
    stock_run,
    tied_weights_keys,
)
from scaffold.modes.contract import ModeError, ModeSpec, Registry

# Order matters: static detectors first, then probes that need the tiny instance; stock_run reads them all.
REGISTRY = Registry(
    [
        block_detection.SPEC,
        layer_types.SPEC,
        fused_moe.SPEC,
        mllm_misdetection.SPEC,
        forward_coverage.SPEC,
        shared_cache_keys.SPEC,
        block_replay.SPEC,
        ignore_layers.SPEC,
        tied_weights_keys.SPEC,
        save_conversion.SPEC,
        # scaffold dev add-mode registers new modes above this line
        stock_run.SPEC,  # last: reads the findings before it (ctx.findings)
    ]
)
FAILURE_MODES: list[ModeSpec] = REGISTRY.specs
if REGISTRY.missing():
    raise ModeError(f"Mode members without a registered mode package: {REGISTRY.missing()}")


def by_mode(mode: Mode) -> ModeSpec:
    return REGISTRY.by_mode(mode)


__all__ = ["FAILURE_MODES", "REGISTRY", "ModeError", "ModeSpec", "by_mode"]
