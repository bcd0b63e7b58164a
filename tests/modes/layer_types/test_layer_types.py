"""layer_types: its corpus fixture trips it (ExactProj, a custom projection computing F.linear).

The fixture is ``SPEC.fixture`` (``scaffold/modes/layer_types/__init__.py``); unit tests of the detector and the
generator stay in tests/test_detectors_*.py and tests/test_generat*.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_layer_types():
    modes = problem_modes(fixture_findings(Mode.LAYER_TYPES))
    assert modes == ["layer_types"]  # and no other mode
