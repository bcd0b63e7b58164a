"""The block_detection failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.block_detection import check, detect, generate
from scaffold.modes.contract import ModeSpec

SPEC = ModeSpec(
    mode=Mode.BLOCK_DETECTION,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests.inspect_archs.static_archs:sa_decoy",
)
