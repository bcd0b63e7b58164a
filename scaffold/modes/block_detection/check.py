"""block_detection's check: AutoRound's ``get_block_names`` returns exactly the generated stacks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import Check


def problems(tiny: Any, test_data: Mapping[str, Any]) -> list[str]:
    from auto_round.utils import model as utils_model

    stacks = test_data.get(Mode.BLOCK_DETECTION.value, {}).get("stacks")
    if not stacks:
        return []
    found = [sorted({name.rsplit(".", 1)[0] for name in names}) for names in utils_model.get_block_names(tiny.model)]
    if [s for group in found for s in group] != stacks:
        return [f"get_block_names returns stacks {found}, expected {stacks}"]
    return []


CHECK = Check(test="test_autoround_registries_know_the_model", problems=problems)
