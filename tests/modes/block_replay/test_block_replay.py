"""block_replay: its corpus fixture trips it (a 0-d per-layer scale AutoRound replays from layer 0).

The fixture is ``SPEC.fixture`` (``scaffold/modes/block_replay/__init__.py``); unit tests of the detector and the
generator stay in tests/test_detectors_*.py and tests/test_generat*.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_block_replay():
    modes = problem_modes(fixture_findings(Mode.BLOCK_REPLAY))
    assert modes == ["block_replay"]  # and no other mode
