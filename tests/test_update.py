"""`scaffold update DIR`: a three-way merge keeps hand edits, brings changed inputs, shows conflicts."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from scaffold.cli import app

# HRM's blocks get inputs no rule derives (and no stack is registered): TODO(scaffold) items remain
TARGET = "transformers:hrm_text"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgsign=false"]
RAISE = '    raise NotImplementedError("TODO(scaffold): finish this block replay fix")'
HAND_EDIT = "    model.finished_by_hand = True  # written by a human"


def git(repo, *args):
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def commit_all(repo, message):
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("pristine") / "hrm_text"
    result = CliRunner().invoke(app, ["new-arch", TARGET, "--out", str(out)])
    assert result.exit_code == 1, result.output  # TODO(scaffold) items remain
    assert RAISE in (out / "hrm_text_autoround.py").read_text()
    return out


@pytest.fixture
def repo(tmp_path, pristine):
    """A git repository holding the adaptation, committed as new-arch wrote it."""
    shutil.copytree(pristine, tmp_path / "hrm_text")
    git(tmp_path, "init", "--quiet")
    commit_all(tmp_path, "new-arch")
    return tmp_path


def edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def set_group_size(folder, value):
    edit(folder / ".copier-answers.yml", "group_size: 128\n", f"group_size: {value}\n")


@pytest.mark.slow
def test_update_keeps_the_hand_edit_and_brings_the_changed_answer(repo):
    folder = repo / "hrm_text"
    plugin, test = folder / "hrm_text_autoround.py", folder / "test_hrm_text.py"
    edit(plugin, RAISE, HAND_EDIT)  # the TODO finished by hand...
    edit(plugin, "    TODO(scaffold): replaying a block", "    Done: replaying a block")
    set_group_size(folder, 64)  # ...and an input changed
    commit_all(repo, "finish the TODO, group size 64")
    assert "GROUP_SIZE = 128" in test.read_text()

    result = CliRunner().invoke(app, ["update", str(folder)])

    assert result.exit_code == 0, result.output
    assert "updated test_hrm_text.py" in result.output
    assert HAND_EDIT in plugin.read_text() and "TODO(scaffold)" not in plugin.read_text()
    assert "GROUP_SIZE = 64" in test.read_text()
    changed = git(repo, "status", "--porcelain").split()
    assert sorted(changed[1::2]) == ["hrm_text/.copier-answers.yml", "hrm_text/test_hrm_text.py"]
    # The new base is what was rendered now: a second update has nothing to do.
    commit_all(repo, "update")
    again = CliRunner().invoke(app, ["update", str(folder)])
    assert again.exit_code == 0 and "already up to date" in again.output, again.output
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.slow
def test_update_shows_a_conflict_and_exits_1(repo):
    folder = repo / "hrm_text"
    test = folder / "test_hrm_text.py"
    edit(test, "GROUP_SIZE = 128\n", "GROUP_SIZE = 96  # chosen by hand\n")  # the line the new answer changes
    set_group_size(folder, 64)
    commit_all(repo, "conflicting edit")

    result = CliRunner().invoke(app, ["update", str(folder)])

    assert result.exit_code == 1, result.output
    assert "conflict test_hrm_text.py" in result.output
    text = test.read_text()
    assert "<<<<<<< " in text and "GROUP_SIZE = 96  # chosen by hand" in text and "GROUP_SIZE = 64" in text
    assert "TODO(scaffold) hrm_text_autoround.py:" in result.output  # the unfinished skeleton is listed too


def test_update_refuses_uncommitted_changes(repo):
    folder = repo / "hrm_text"
    (folder / "notes.txt").write_text("mine\n")
    result = CliRunner().invoke(app, ["update", str(folder)])
    assert result.exit_code == 2
    assert "uncommitted changes" in result.output and "notes.txt" in result.output
    assert "Traceback" not in result.output


def test_update_refuses_a_folder_outside_git(pristine, tmp_path):
    folder = tmp_path / "hrm_text"
    shutil.copytree(pristine, folder)
    result = CliRunner().invoke(app, ["update", str(folder)])
    assert result.exit_code == 2 and "not in a git work tree" in result.output


def test_update_refuses_a_folder_new_arch_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    result = CliRunner().invoke(app, ["update", str(tmp_path)])
    assert result.exit_code == 2 and "no .copier-answers.yml" in result.output


def test_update_refuses_answers_without_the_recorded_files(tmp_path):
    (tmp_path / ".copier-answers.yml").write_text("scaffold_version: 0.1.0\ntarget: transformers:bloom\n")
    result = CliRunner().invoke(app, ["update", str(tmp_path)])
    assert result.exit_code == 2 and "does not record the files" in result.output
