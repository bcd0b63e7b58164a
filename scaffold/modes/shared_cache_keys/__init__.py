"""The shared_cache_keys failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import ModeSpec
from scaffold.modes.shared_cache_keys import check, detect, generate

SPEC = ModeSpec(
    mode=Mode.SHARED_CACHE_KEYS,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests.inspect_archs.dynamic_archs:da_shared_bias",
    needs_tiny=True,
)
