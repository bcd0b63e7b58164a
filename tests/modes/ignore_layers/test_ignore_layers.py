"""ignore_layers: its corpus fixture trips it (an MTP tower that must stay in float).

The fixture is ``SPEC.fixture`` (``scaffold/modes/ignore_layers/__init__.py``); ``tests/archs_tf4/tf4_mtp``
trips it too on transformers 4.x (tests/test_tf4_archs.py). Unit tests of the detector and the generator stay
in tests/test_detectors_static.py and tests/test_generate_generators.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_ignore_layers():
    modes = problem_modes(fixture_findings(Mode.IGNORE_LAYERS))
    assert "ignore_layers" in modes  # with forward_coverage: the forward never runs the MTP tower either
