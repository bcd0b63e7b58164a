"""ignore_layers' check: AutoRound's predefined ignore layers cover the generated patterns and routers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import Check


def problems(tiny: Any, test_data: Mapping[str, Any]) -> list[str]:
    from auto_round import special_model_handler as handler

    ignore = test_data.get(Mode.IGNORE_LAYERS.value)
    if not ignore:
        return []
    model = tiny.model
    ignored = set(handler.get_predefined_ignore_layers(model))
    suffixes = tuple(ignore["router_suffixes"])
    expected = set(ignore["patterns"])
    expected |= {name for name, _ in model.named_modules() if suffixes and name.endswith(suffixes)}
    if not expected <= ignored:
        return [f"predefined ignore layers miss {sorted(expected - ignored)}"]
    return []


CHECK = Check(test="test_autoround_registries_know_the_model", problems=problems)
