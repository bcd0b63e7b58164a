"""layer_types' check: each converted linear-like module computes what the original did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import Check
from scaffold.modes.equivalence import check_equivalence


def problems(tiny: Any, test_data: Mapping[str, Any]) -> list[str]:
    return check_equivalence(tiny, test_data, keys=(Mode.LAYER_TYPES.value,)).problems


CHECK = Check(test="test_replacements_match_the_original_modules", problems=problems)
