"""The tied_weights_keys failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import ModeSpec
from scaffold.modes.tied_weights_keys import check, detect, generate

SPEC = ModeSpec(
    mode=Mode.TIED_WEIGHTS_KEYS,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests/modes/tied_weights_keys/scaftie",  # ScafTie: a 4.x list-style _tied_weights_keys
    needs_tiny=False,  # static: the meta skeleton's classes and the installed transformers
)
