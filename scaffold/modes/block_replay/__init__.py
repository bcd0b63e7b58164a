"""The block_replay failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.block_replay import check, detect, generate
from scaffold.modes.contract import ModeSpec

SPEC = ModeSpec(
    mode=Mode.BLOCK_REPLAY,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests.inspect_archs.dynamic_archs:da_layer_scale",
    needs_tiny=True,
    depends_on=(Mode.SHARED_CACHE_KEYS,),
)
