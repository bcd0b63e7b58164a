"""Run every registered detector on a mode's corpus fixture (``ModeSpec.fixture``)."""

from __future__ import annotations

import importlib

import pytest
import torch

from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.modes import by_mode
from scaffold.versions import transformers_major


def fixture_findings(mode: Mode) -> list[Finding]:
    """Findings of the whole registry (in order: later modes read earlier findings) on ``mode``'s fixture."""
    from scaffold.inspection.stage import inspect_target, run_detectors

    spec = by_mode(mode)
    torch.manual_seed(0)
    if ":" in spec.fixture:
        module, _, case = spec.fixture.partition(":")
        ctx = importlib.import_module(module).make_context(case, dynamic=True)
        return run_detectors(ctx)
    if spec.fixture.startswith("tests/archs_tf4") and transformers_major() != 4:
        pytest.skip("a transformers 4.x fixture (run .ci/tf4.sh)")
    from scaffold.resolve.target import resolve_target

    return inspect_target(resolve_target(spec.fixture, trust_remote_code=True)).findings


def problem_modes(findings: list[Finding]) -> list[str]:
    return [f.mode.value for f in findings if f.severity is not Severity.OK]
