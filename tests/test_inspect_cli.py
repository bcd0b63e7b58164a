"""``scaffold inspect``: JSON output parses back, exit codes 0/1, static inspection of a 671B model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scaffold.inspection.findings import InspectReport, Mode, Severity
from tests.inspect_archs.static_archs import ARCHS, register_all


@pytest.fixture
def cli():
    from scaffold.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["inspect", *args])


@pytest.fixture
def test_archs(monkeypatch):
    """Make the ``sa_*`` archs resolvable as ``transformers:<type>`` in this process."""
    import scaffold.resolve.target

    register_all()
    known = scaffold.resolve.target.known_model_types()
    monkeypatch.setattr(scaffold.resolve.target, "known_model_types", lambda: sorted([*known, *ARCHS]))


def _report(output: str) -> InspectReport:
    data = json.loads(output)
    assert data["schema_version"] == "1.1"
    report = InspectReport.from_json(data)
    assert data.pop("host")["amp_dtype"] in ("bfloat16", "float32")  # the CLI adds the host's precision
    assert report.to_json() == data  # round-trips
    return report


def test_llama_static_json_has_nothing_to_fix(cli):
    result = cli("transformers:llama", "--json", "--static")
    assert result.exit_code == 0, result.output
    report = _report(result.stdout)
    assert report.problems == [] and report.dynamic is False
    assert report.block_stacks[0]["path"] == "model.layers" and report.block_stacks[0]["count"] == 32
    assert report.model_share() == 1.0


def test_findings_exit_one_and_parse(cli, test_archs):
    result = cli("transformers:sa_fused_moe", "--json", "--static", "--group-size", "32")
    assert result.exit_code == 1, result.output
    report = _report(result.stdout)
    assert [f.mode for f in report.problems] == [Mode.FUSED_MOE]
    (cov,) = report.coverage
    assert cov.where_unquantized["fused experts"] == 2 * (4 * 256 * 64 + 4 * 64 * 128)


def test_human_view_names_the_failure_mode(cli, test_archs):
    result = cli("transformers:sa_decoy", "--static", "--group-size", "32")
    assert result.exit_code == 1
    assert "block_detection" in result.stdout and "fails" in result.stdout
    assert "1 problem(s)" in result.stdout


def test_deepseek_v3_static_inspection(cli):
    result = cli("transformers:deepseek_v3", "--json", "--static")
    assert result.exit_code == 0, result.output  # stock AutoRound handles it: transformers' experts interface
    report = _report(result.stdout)
    assert report.problems == [] and {f.severity for f in report.findings} == {Severity.OK}
    assert report.parameters > 600e9
    assert [(s["path"], s["count"]) for s in report.block_stacks] == [("model.layers", 61)]
    (moe,) = [f for f in report.findings if f.mode is Mode.FUSED_MOE]
    assert moe.evidence["num_experts"] == 256 and moe.probe == "static"


def test_a_crashing_detector_is_one_line_and_exit_2(cli, monkeypatch):
    import scaffold.modes.layer_types.detect as layer_types

    def broken(ctx):
        raise IndexError("tuple index out of range")

    monkeypatch.setattr(layer_types, "detect", broken)
    result = cli("transformers:llama", "--static")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "layer_types detector failed" in lines[0] and "Traceback" not in result.output
