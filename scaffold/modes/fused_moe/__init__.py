"""The fused_moe failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import ModeSpec
from scaffold.modes.fused_moe import check, detect, generate

SPEC = ModeSpec(
    mode=Mode.FUSED_MOE,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests.inspect_archs.static_archs:sa_fused_moe",
)
