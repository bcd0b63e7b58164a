"""The layer_types failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import ModeSpec
from scaffold.modes.layer_types import check, detect, generate

SPEC = ModeSpec(
    mode=Mode.LAYER_TYPES,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests.inspect_archs.static_archs:sa_custom_linear",
)
