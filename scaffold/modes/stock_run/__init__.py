"""The stock_run failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import ModeSpec
from scaffold.modes.stock_run import check, detect, generate

SPEC = ModeSpec(
    mode=Mode.STOCK_RUN,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests.inspect_archs.dynamic_archs:da_inplace_gate",
    needs_tiny=True,
    depends_on=tuple(mode for mode in Mode if mode is not Mode.STOCK_RUN),  # reads every other mode's findings
)
