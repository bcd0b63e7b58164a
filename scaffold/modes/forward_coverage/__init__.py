"""The forward_coverage failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import ModeSpec
from scaffold.modes.forward_coverage import check, detect, generate

SPEC = ModeSpec(
    mode=Mode.FORWARD_COVERAGE,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests.inspect_archs.dynamic_archs:da_mtp_tower",
    needs_tiny=True,
)
