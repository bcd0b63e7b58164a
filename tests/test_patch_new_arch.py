"""new-arch with --autoround: every refusal comes before anything is written; --check writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaffold.errors import ScaffoldError
from scaffold.plan.generate import new_arch
from scaffold.resolve.target import resolve_target
from tests.conftest_patch import AUTOROUND_VERSION, commit_all, git

ARCH = Path(__file__).parent / "archs" / "shared_tensor"  # one SPECIAL_SHARED_CACHE_KEYS edit


def _target():
    return resolve_target(str(ARCH), trust_remote_code=True)


def _tree(checkout: Path) -> str:
    return git(checkout, "status", "--porcelain", "--untracked-files=all")


def test_edits_json_and_report_record_the_autoround_version(autoround_checkout: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = new_arch(_target(), out, autoround=autoround_checkout)
    assert (
        result.patch.written and json.loads((out / "edits.json").read_text())["autoround_version"] == AUTOROUND_VERSION
    )
    report = (out / "REPORT.md").read_text()
    assert f"The edits were made for auto-round {AUTOROUND_VERSION};" in report
    assert "refuses a checkout outside auto-round<0.18,>=0.16" in report


def test_dirty_checkout_is_refused_before_the_output_is_written(autoround_checkout: Path, tmp_path: Path):
    handler = autoround_checkout / "auto_round" / "special_model_handler.py"
    handler.write_text(handler.read_text() + "\n# local change\n")
    out = tmp_path / "out"
    with pytest.raises(ScaffoldError, match="uncommitted changes"):
        new_arch(_target(), out, autoround=autoround_checkout)
    assert not out.exists()
    assert _tree(autoround_checkout) == " M auto_round/special_model_handler.py\n"


def test_unsupported_checkout_is_refused_before_inspecting(autoround_checkout: Path, tmp_path: Path, monkeypatch):
    (autoround_checkout / "auto_round" / "version.py").write_text('__version__ = "0.9.0"\n')
    commit_all(autoround_checkout, "old version")
    import scaffold.inspection.stage

    def never(*args, **kwargs):
        raise AssertionError("inspected a target whose patch is refused")

    monkeypatch.setattr(scaffold.inspection.stage, "inspect_with_context", never)
    out = tmp_path / "out"
    with pytest.raises(ScaffoldError, match="is auto-round 0.9.0, outside the range"):
        new_arch(_target(), out, autoround=autoround_checkout)
    assert not out.exists() and _tree(autoround_checkout) == ""


def test_check_works_whatever_the_output_folder_holds(autoround_checkout: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "unrelated.txt").write_text("not scaffold's\n")
    result = new_arch(_target(), out, autoround=autoround_checkout, check=True)
    assert result.patch.pending and not result.patch.written
    assert [p.name for p in out.iterdir()] == ["unrelated.txt"] and _tree(autoround_checkout) == ""
