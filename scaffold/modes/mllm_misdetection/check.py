"""mllm_misdetection's check: AutoRound no longer treats the text-only model as multimodal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import Check


def problems(tiny: Any, test_data: Mapping[str, Any]) -> list[str]:
    from auto_round.utils import model as utils_model

    if test_data.get(Mode.MLLM_MISDETECTION.value, {}).get("llm_only") and utils_model.is_mllm_model(tiny.model):
        return ["AutoRound still treats the model as multimodal (is_mllm_model is True)"]
    return []


CHECK = Check(test="test_autoround_registries_know_the_model", problems=problems)
