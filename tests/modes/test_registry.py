"""The registry self-test: every mode has a detector, a generator, a check, a README, tests and a corpus fixture;
and the contract refuses a mode that lacks one (each part removed in turn)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from scaffold.dev.audit import PARTS, audit, audit_all, mode_tests
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.modes import FAILURE_MODES, by_mode
from scaffold.modes.contract import Check, ModeError, ModeSpec, Registry

ROOT = Path(__file__).resolve().parents[2]


def test_every_registered_mode_is_complete():
    assert audit_all(ROOT) == []
    assert {spec.mode for spec in FAILURE_MODES} == set(Mode)


def test_stock_run_reads_every_earlier_finding():
    assert FAILURE_MODES[-1].mode is Mode.STOCK_RUN
    assert set(FAILURE_MODES[-1].depends_on) == set(Mode) - {Mode.STOCK_RUN}


def _copy_mode(tmp_path: Path, name: str) -> Path:
    """The parts of mode ``name`` (and what the audit reads) copied under ``tmp_path``."""
    for rel in (f"scaffold/modes/{name}", f"tests/modes/{name}", "templates/adaptation", "tests/inspect_archs"):
        shutil.copytree(ROOT / rel, tmp_path / rel, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.parametrize("part", [*PARTS, "tests"])
def test_removing_a_part_of_a_mode_fails_the_audit(tmp_path, part):
    spec = by_mode(Mode.SHARED_CACHE_KEYS)
    root = _copy_mode(tmp_path, spec.name)
    assert audit(spec, root) == []
    target = mode_tests(root, spec.name) if part == "tests" else root / "scaffold/modes" / spec.name / part
    target.unlink()
    (problem,) = audit(spec, root)
    assert spec.name in problem and (part if part != "tests" else f"test_{spec.name}.py") in problem


def test_a_fixture_that_names_no_corpus_case_fails_the_audit(tmp_path):
    spec = by_mode(Mode.SHARED_CACHE_KEYS)
    root = _copy_mode(tmp_path, spec.name)
    for fixture in ("tests.inspect_archs.dynamic_archs:da_no_such_arch", "tests/archs/no_such_folder"):
        moved = ModeSpec(**{**spec.__dict__, "fixture": fixture})
        (problem,) = audit(moved, root)
        assert "fixture" in problem


def _spec(**changes) -> ModeSpec:
    spec = by_mode(Mode.SHARED_CACHE_KEYS)
    return ModeSpec(**{**spec.__dict__, **changes})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"detector": SimpleNamespace()}, "detect"),
        ({"generator": SimpleNamespace(detect=print)}, "generate"),
        ({"check": None}, "Check"),
        ({"fixture": ""}, "fixture"),
        ({"mode": "shared_cache_keys"}, "Mode member"),
        ({"depends_on": (Mode.SHARED_CACHE_KEYS,)}, "depends_on"),
    ],
)
def test_an_incomplete_mode_cannot_register(changes, message):
    with pytest.raises(ModeError, match=message):
        _spec(**changes)


def test_a_check_names_a_generated_test():
    with pytest.raises(ModeError, match="generated tests"):
        Check(test="test_something_else")


def test_the_registry_refuses_duplicates_and_late_dependencies():
    cache, replay = by_mode(Mode.SHARED_CACHE_KEYS), by_mode(Mode.BLOCK_REPLAY)
    with pytest.raises(ModeError, match="twice"):
        Registry([cache, cache])
    with pytest.raises(ModeError, match="registered before"):
        Registry([replay, cache])


def _build_plan_with(monkeypatch, generate):
    """``build_plan`` on a fused_moe finding (its facts recorded), then an mllm_misdetection one run by ``generate``."""
    from scaffold.inspection.findings import InspectReport
    from scaffold.plan import generate as new_arch

    def fused_moe(finding, plan, ctx=None):
        plan.test_data["fused_moe"] = [{"modules": ["model.experts"]}]

    monkeypatch.setattr(by_mode(Mode.FUSED_MOE).generator, "generate", fused_moe)
    monkeypatch.setattr(by_mode(Mode.MLLM_MISDETECTION).generator, "generate", generate)
    found = [Finding(mode, Severity.FAILS, mode.value, "fix") for mode in (Mode.FUSED_MOE, Mode.MLLM_MISDETECTION)]
    report = InspectReport("t", "toy", "ToyForCausalLM", "ToyConfig", 0, 0, [], [], [], found, {}, False)
    return new_arch.build_plan(report, None)[0]


def test_a_generator_writes_its_facts_under_its_mode_value(monkeypatch):
    def tidy(finding, plan, ctx=None):
        plan.test_data["mllm_misdetection"] = {"llm_only": True}

    plan = _build_plan_with(monkeypatch, tidy)
    assert plan.test_data == {"fused_moe": [{"modules": ["model.experts"]}], "mllm_misdetection": {"llm_only": True}}


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda data: data.update(block_detection={"stacks": ["model.layers"]}), "'block_detection'"),  # another's
        (lambda data: data.update(llm_only=True), "'llm_only'"),  # a free key (the old layout)
        (lambda data: data.update(mllm_misdetection=True), "a bool, not a dict or a list"),  # its key, not a dict
        (lambda data: data["fused_moe"].append({"modules": []}), "'fused_moe'"),  # another's facts, in place
        (lambda data: data.pop("fused_moe"), "'fused_moe'"),
    ],
)
def test_a_generator_breaking_the_test_data_rule_fails(monkeypatch, write, message):
    def sloppy(finding, plan, ctx=None):
        write(plan.test_data)

    with pytest.raises(ModeError, match=message):
        _build_plan_with(monkeypatch, sloppy)


@pytest.mark.parametrize("spec", FAILURE_MODES, ids=lambda spec: spec.name)
def test_every_generator_keys_its_facts_by_its_mode_on_its_fixture(spec):
    from scaffold.inspection.findings import InspectReport
    from scaffold.plan.generate import build_plan
    from tests.modes.fixtures import fixture_findings, problem_modes

    found = fixture_findings(spec.mode)
    report = InspectReport("t", "toy", "ToyForCausalLM", "ToyConfig", 0, 0, [], [], [], found, {}, False)
    plan, _ = build_plan(report, None)  # refuses a generator that writes any other key
    assert set(plan.test_data) <= set(problem_modes(found))
    assert all(isinstance(facts, dict | list) for facts in plan.test_data.values())
