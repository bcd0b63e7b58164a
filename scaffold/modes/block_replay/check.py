"""block_replay's check: AutoRound's own caching and ``block_forward`` replay every block like the model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import Check


def replay_problems(tiny: Any) -> list[str]:
    """Blocks whose replay by AutoRound's own caching and ``block_forward`` does not reproduce the real forward.

    Run after the adaptation is applied: ``AutoRound(...)`` then applies it to its copy of the model, so an
    empty list means every block of each stack gets, replayed, the inputs the model gives it.
    """
    from scaffold.inspection.autoround_replay import replay_outcomes

    outcomes = replay_outcomes(tiny.model, tiny.inputs)
    if not outcomes:
        return ["AutoRound's get_block_names finds no blocks to replay"]
    return [f"{block}: {outcome}" for block, outcome in outcomes.items() if not outcome.startswith("matches")]


def problems(tiny: Any, test_data: Mapping[str, Any]) -> list[str]:
    return replay_problems(tiny) if test_data.get(Mode.BLOCK_REPLAY.value) else []


CHECK = Check(test="test_autoround_replays_blocks_like_the_model", problems=problems)
