"""forward_coverage: its corpus fixture trips it (an MTP tower the forward never runs).

The fixture is ``SPEC.fixture`` (``scaffold/modes/forward_coverage/__init__.py``); unit tests of the detector and the
generator stay in tests/test_detectors_*.py and tests/test_generat*.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_forward_coverage():
    modes = problem_modes(fixture_findings(Mode.FORWARD_COVERAGE))
    assert modes[0] == "forward_coverage"  # ignore_layers also keeps the MTP tower (mtp_layers) in float
