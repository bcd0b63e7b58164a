"""The mllm_misdetection failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import ModeSpec
from scaffold.modes.mllm_misdetection import check, detect, generate

SPEC = ModeSpec(
    mode=Mode.MLLM_MISDETECTION,
    detector=detect,
    generator=generate,
    check=check.CHECK,
    fixture="tests.inspect_archs.static_archs:sa_mllm_key",
)
