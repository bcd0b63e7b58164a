"""shared_cache_keys: its corpus fixture trips it (a [heads, S, S] position bias computed once per forward).

The fixture is ``SPEC.fixture`` (``scaffold/modes/shared_cache_keys/__init__.py``); unit tests of the detector and the
generator stay in tests/test_detectors_*.py and tests/test_generat*.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_shared_cache_keys():
    modes = problem_modes(fixture_findings(Mode.SHARED_CACHE_KEYS))
    assert modes == ["shared_cache_keys"]  # and no other mode
