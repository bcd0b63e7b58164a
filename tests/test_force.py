"""`new-arch --force` replaces only a folder new-arch wrote; anything else is refused, nothing deleted."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from scaffold.cli import app


def new_arch(out, *extra):
    return CliRunner().invoke(app, ["new-arch", "transformers:bloom", "--out", str(out), *extra])


@pytest.mark.parametrize("answers", [None, "just: a file of mine\n"])
def test_force_refuses_a_folder_new_arch_did_not_write(tmp_path, answers):
    (tmp_path / "notes.txt").write_text("keep me\n")
    if answers is not None:  # an answers file that is not new-arch's
        (tmp_path / ".copier-answers.yml").write_text(answers)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = new_arch(tmp_path, "--force")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "not a folder scaffold wrote" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"


def test_without_force_a_non_empty_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me\n")
    result = new_arch(tmp_path)
    assert result.exit_code == 2 and "pass --force" in result.output
    assert (tmp_path / "notes.txt").is_file()


@pytest.mark.slow
def test_force_replaces_a_folder_new_arch_wrote(tmp_path):
    out = tmp_path / "bloom"
    assert new_arch(out).exit_code == 0
    (out / "stale.txt").write_text("left from an older run\n")
    result = new_arch(out, "--force")
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists() and (out / "REPORT.md").is_file()
