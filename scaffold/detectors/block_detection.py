"""Does AutoRound's ``get_block_names`` return exactly the decoder stacks found in the module tree?"""

from __future__ import annotations

from scaffold import autoround_api
from scaffold.context import InspectContext
from scaffold.coverage import scan_model
from scaffold.findings import Finding, Mode, Severity


def _stack_path(block_names: list[str]) -> str:
    first = block_names[0]
    return first.rsplit(".", 1)[0] if "." in first else ""


def detect(ctx: InspectContext) -> list[Finding]:
    blocks = [names for names in autoround_api.get_block_names(ctx.meta_model) if names]
    scan = scan_model(ctx.meta_model)
    expected = [s for s in scan.stacks if s.modality == "text"]
    returned = [_stack_path(names) for names in blocks]
    expected_paths = {s.path for s in expected}
    missing = [s.path for s in expected if s.path not in returned]
    wrong = [path for path in returned if path not in expected_paths]
    if not missing and not wrong and blocks:
        return []
    stacks = [
        {"path": s.path, "block_class": s.block_class, "count": s.count, "container": s.container} for s in expected
    ]
    if not blocks:
        summary = "AutoRound's get_block_names finds no blocks: nothing would be quantized block-wise"
    elif missing and not set(returned) & expected_paths:
        summary = f"AutoRound picks {', '.join(wrong)} as blocks and misses the decoder stack {', '.join(missing)}"
    elif missing:
        summary = f"AutoRound misses block stack(s) {', '.join(missing)}"
    else:
        summary = f"AutoRound returns {', '.join(wrong)} as blocks, which are not decoder stacks"
    return [
        Finding(
            mode=Mode.BLOCK_DETECTION,
            severity=Severity.FAILS,
            summary=summary,
            fix="register a SPECIAL_MULTIMODAL_BLOCK function that returns the stacks listed in evidence.stacks",
            modules=[s["path"] for s in stacks] + wrong,
            classes=sorted({s.block_class for s in expected}),
            evidence={"autoround_blocks": blocks, "stacks": stacks, "missing": missing, "wrong": wrong},
        )
    ]
