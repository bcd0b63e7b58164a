"""save_conversion's check: once AutoRound has prepared the model, ``save_pretrained`` reverts no conversion that
joins the packed tensors of the quantized layers (what stock AutoRound's export crashed on)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import Check


def problems(tiny: Any, test_data: Mapping[str, Any]) -> list[str]:
    if not test_data.get(Mode.SAVE_CONVERSION.value):
        return []
    from auto_round import special_model_handler as handler

    from scaffold.modes.save_conversion.detect import joined_layers

    model = handler._handle_special_model(copy.deepcopy(tiny.model))  # as AutoRound prepares what it quantizes
    return [
        f"save_pretrained still joins {', '.join(j.targets)} into {', '.join(j.checkpoint)} "
        f"({len(j.layers)} quantized layers): {j.error}"
        for j in joined_layers(model)
    ]


CHECK = Check(test="test_autoround_registries_know_the_model", problems=problems)
