"""stock_run: its corpus fixture trips it (an in-place gate that breaks AutoRound's tuning backward and nothing else).

The fixture is ``SPEC.fixture`` (``scaffold/modes/stock_run/__init__.py``); unit tests of the detector and the
generator stay in tests/test_detectors_*.py and tests/test_generat*.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_stock_run():
    modes = problem_modes(fixture_findings(Mode.STOCK_RUN))
    assert modes == ["stock_run"]  # and no other mode
