"""The save_conversion failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import ModeSpec
from scaffold.modes.save_conversion import check, detect, generate

SPEC = ModeSpec(
    mode=Mode.SAVE_CONVERSION,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests/modes/save_conversion/scafsplit",  # ScafSplit: q/k/v split from one uneven fused tensor
    needs_tiny=False,  # static: the meta skeleton's conversion mapping, reverted on meta tensors
)
