"""Fixtures for the patcher tests: a real AutoRound source tree (of the installed version) as a git repo.

The sdist is downloaded once into ``~/.cache/autoround-scaffold/`` (override with ``AUTOROUND_SCAFFOLD_CACHE``).
Without network (or with ``AUTOROUND_SCAFFOLD_SOURCE=installed``) the tree is rebuilt from the installed
package instead: its files as listed in the wheel's RECORD, README.md from its metadata, a minimal setup.py.
Either tree is committed once per session; each test gets its own cheap local clone. Nothing skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import warnings
from importlib.metadata import distribution, version
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


def autoround_sdist() -> Path | None:
    """The cached sdist of the installed auto-round, downloaded from PyPI the first time; None when unreachable."""
    path = CACHE / f"auto_round-{AUTOROUND_VERSION}.tar.gz"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--timeout", "20"]
    done = subprocess.run(
        [*command, f"auto-round=={AUTOROUND_VERSION}", "-d", str(CACHE)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not path.is_file():
        reason = done.stderr.strip()[-200:]
        warnings.warn(f"no auto-round {AUTOROUND_VERSION} sdist ({reason}); using the installed files", stacklevel=2)
        return None
    return path


SETUP_PY = """import re

from setuptools import find_packages, setup

version = re.findall('__version__ = "(.*)"', open("auto_round/version.py").read())[0]
setup(name="auto-round", version=version, packages=find_packages(include=["auto_round*"]))
"""


def installed_source_tree(root: Path) -> Path:
    """The installed auto-round laid out as its source tree, without network: every file the wheel installed
    under its top-level packages (no bytecode), README.md from the package metadata, a minimal setup.py."""
    dist = distribution("auto-round")
    tree = root / f"auto_round-{AUTOROUND_VERSION}"
    packages = set((dist.read_text("top_level.txt") or "auto_round").split())
    for file in dist.files or []:
        if file.parts[0] not in packages or "__pycache__" in file.parts or file.suffix == ".pyc":
            continue
        target = tree / Path(*file.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file.locate(), target)
    (tree / "README.md").write_text(dist.metadata.get_payload() or f"# AutoRound {AUTOROUND_VERSION}\n")
    (tree / "setup.py").write_text(SETUP_PY)
    return tree


def source_tree(root: Path) -> Path:
    """The sdist unpacked under ``root`` when it can be had, else :func:`installed_source_tree`."""
    sdist = None if os.environ.get("AUTOROUND_SCAFFOLD_SOURCE") == "installed" else autoround_sdist()
    if sdist is None:
        return installed_source_tree(root)
    with tarfile.open(sdist) as archive:
        archive.extractall(root, filter="data")
    (tree,) = [path for path in root.iterdir() if path.is_dir()]
    return tree


@pytest.fixture(scope="session")
def autoround_source_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine AutoRound source tree committed to git, shared by the session (never modify it)."""
    tree = source_tree(tmp_path_factory.mktemp("autoround-source"))
    git(tree, "init", "-q")
    commit_all(tree, f"auto-round {AUTOROUND_VERSION} source")
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
