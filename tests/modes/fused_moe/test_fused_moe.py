"""fused_moe: its corpus fixture trips it (3-D fused experts AutoRound leaves plain).

The fixture is ``SPEC.fixture`` (``scaffold/modes/fused_moe/__init__.py``); unit tests of the detector and the
generator stay in tests/test_detectors_*.py and tests/test_generat*.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_fused_moe():
    modes = problem_modes(fixture_findings(Mode.FUSED_MOE))
    assert modes == ["fused_moe"]  # and no other mode
