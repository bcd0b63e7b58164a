"""Fixtures for the patcher tests: a real AutoRound source tree (the sdist of the installed version) as a git repo.

The sdist is downloaded once into ``~/.cache/autoround-scaffold/`` (override with ``AUTOROUND_SCAFFOLD_CACHE``),
unpacked and committed once per session; each test gets its own cheap local clone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import pytest

AUTOROUND_VERSION = version("auto-round")
CACHE = Path(os.environ.get("AUTOROUND_SCAFFOLD_CACHE", Path.home() / ".cache" / "autoround-scaffold"))
_IDENTITY = ["-c", "user.name=scaffold-tests", "-c", "user.email=tests@example.invalid", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (with a fixed identity) and return its stdout; fail the test on error."""
    done = subprocess.run(["git", *_IDENTITY, "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def commit_all(repo: Path, message: str = "change") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def autoround_sdist() -> Path:
    """The cached sdist of the installed auto-round, downloaded from PyPI the first time."""
    path = CACHE / f"auto_round-{AUTOROUND_VERSION}.tar.gz"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    done = subprocess.run(
        [*command, f"auto-round=={AUTOROUND_VERSION}", "-d", str(CACHE)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not path.is_file():
        pytest.skip(f"cannot download the auto-round {AUTOROUND_VERSION} sdist: {done.stderr.strip()[-300:]}")
    return path


@pytest.fixture(scope="session")
def autoround_source_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine AutoRound source tree committed to git, shared by the session (never modify it)."""
    root = tmp_path_factory.mktemp("autoround-sdist")
    with tarfile.open(autoround_sdist()) as archive:
        archive.extractall(root, filter="data")
    (tree,) = [path for path in root.iterdir() if path.is_dir()]
    git(tree, "init", "-q")
    commit_all(tree, f"auto-round {AUTOROUND_VERSION} sdist")
    return tree


@pytest.fixture
def autoround_checkout(autoround_source_repo: Path, tmp_path: Path) -> Path:
    """A fresh, clean git clone of the AutoRound source tree for one test."""
    clone = tmp_path / "auto-round"
    done = subprocess.run(
        ["git", "clone", "-q", "--local", str(autoround_source_repo), str(clone)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return clone
