"""mllm_misdetection: its corpus fixture trips it (a text-only config with image_token_id).

The fixture is ``SPEC.fixture`` (``scaffold/modes/mllm_misdetection/__init__.py``); unit tests of the detector and the
generator stay in tests/test_detectors_*.py and tests/test_generat*.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_mllm_misdetection():
    modes = problem_modes(fixture_findings(Mode.MLLM_MISDETECTION))
    assert modes == ["mllm_misdetection"]  # and no other mode
