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


def assert_new_arch_fixes(fixture, mode: Mode, checkout, tmp_path) -> None:
    """new-arch on a remote-code ``fixture`` folder plans exactly ``mode``'s fix, and the generated test passes as a
    runtime plugin and in a patched ``checkout``, with a counted share of at least 0.95 on the export."""
    from scaffold.measure.verify import run_generated_test
    from scaffold.plan.generate import new_arch
    from scaffold.resolve.target import resolve_target

    out = tmp_path / "generated"
    result = new_arch(resolve_target(str(fixture), trust_remote_code=True), out, autoround=checkout)
    assert [item.mode for item in result.plan.items] == [mode.value]
    for adaptation, patched in (("plugin", None), ("checkout", checkout)):
        verdict = run_generated_test(out, checkout=patched, allow_remote_code_from=[str(fixture)])
        assert verdict.passed, f"{adaptation}: {verdict.output_tail}"
        assert verdict.data["adaptation"] == adaptation and verdict.data["export"] == "ok"
        assert verdict.data["counted_share"] >= 0.95
