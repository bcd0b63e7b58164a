"""block_detection: its corpus fixture trips it (the decoy stack `model.rotary_bank` AutoRound takes for blocks).

The fixture is ``SPEC.fixture`` (``scaffold/modes/block_detection/__init__.py``); unit tests of the detector and the
generator stay in tests/test_detectors_*.py and tests/test_generat*.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_block_detection():
    modes = problem_modes(fixture_findings(Mode.BLOCK_DETECTION))
    assert modes == ["block_detection"]  # and no other mode
