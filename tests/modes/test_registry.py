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


def test_the_registry_refuses_duplicates_late_dependencies_and_shared_keys():
    cache, replay = by_mode(Mode.SHARED_CACHE_KEYS), by_mode(Mode.BLOCK_REPLAY)
    with pytest.raises(ModeError, match="twice"):
        Registry([cache, cache])
    with pytest.raises(ModeError, match="registered before"):
        Registry([replay, cache])
    with pytest.raises(ModeError, match="already owned"):
        Registry([cache, ModeSpec(**{**replay.__dict__, "test_data_keys": ("shared_cache_keys",)})])


def test_a_generator_writing_another_modes_test_data_fails(monkeypatch):
    from scaffold.inspection.findings import InspectReport
    from scaffold.plan import generate

    spec = by_mode(Mode.MLLM_MISDETECTION)

    def sloppy(finding, plan, ctx=None):
        plan.test_data["block_stacks"] = ["model.layers"]  # block_detection's key

    monkeypatch.setattr(spec.generator, "generate", sloppy)
    finding = Finding(Mode.MLLM_MISDETECTION, Severity.FAILS, "mllm", "fix")
    report = InspectReport("t", "toy", "ToyForCausalLM", "ToyConfig", 0, 0, [], [], [], [finding], {}, False)
    with pytest.raises(ModeError, match="block_stacks"):
        generate.build_plan(report, None)
