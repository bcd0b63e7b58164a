"""tied_weights_keys's check: once AutoRound has prepared the model, no class keeps a list-style
``_tied_weights_keys`` and ``save_pretrained`` works (what stock AutoRound's export crashed on)."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping
from typing import Any

from scaffold.errors import first_line
from scaffold.inspection.findings import Mode
from scaffold.modes.contract import Check


def problems(tiny: Any, test_data: Mapping[str, Any]) -> list[str]:
    if not test_data.get(Mode.TIED_WEIGHTS_KEYS.value):
        return []
    from auto_round import special_model_handler as handler

    from scaffold.modes.tied_weights_keys.detect import list_style_classes

    model = handler._handle_special_model(copy.deepcopy(tiny.model))  # as AutoRound prepares what it quantizes
    found = [f"{cls.name}._tied_weights_keys is still a list: {cls.keys}" for cls in list_style_classes(model)]
    with tempfile.TemporaryDirectory(prefix="scaffold-tied-") as folder:
        try:
            model.save_pretrained(folder)
        except Exception as exc:  # noqa: BLE001 - the failure is the problem reported
            found.append(f"save_pretrained fails: {first_line(exc)}")
    return found


CHECK = Check(test="test_autoround_registries_know_the_model", problems=problems)
