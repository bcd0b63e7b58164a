"""shared_cache_keys' check: ``SPECIAL_SHARED_CACHE_KEYS`` holds the generated keys for each model class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import Check


def problems(tiny: Any, test_data: Mapping[str, Any]) -> list[str]:
    from auto_round import special_model_handler as handler

    found = []
    for model_class, keys in test_data.get(Mode.SHARED_CACHE_KEYS.value, {}).items():
        registered = tuple(handler.SPECIAL_SHARED_CACHE_KEYS.get(model_class, ()))
        if not set(keys) <= set(registered):
            found.append(f"SPECIAL_SHARED_CACHE_KEYS[{model_class!r}] = {registered}, expected {keys}")
    return found


CHECK = Check(test="test_autoround_registries_know_the_model", problems=problems)
