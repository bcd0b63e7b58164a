"""What the patcher checks about an AutoRound checkout before it writes: its version, and a clean git tree."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from scaffold.errors import ScaffoldError

VERSION_FILE = "auto_round/version.py"
UNKNOWN = "unknown"
FALLBACK_RANGE = ">=0.16,<0.18"  # pyproject's auto-round range, when the installed metadata cannot be read
_SETUP_VERSION = re.compile(r"""\bversion\s*=\s*["']([^"']+)["']""")
_PYPROJECT_VERSION = re.compile(r"""^version\s*=\s*["']([^"']+)["']""", re.MULTILINE)


def _version_py(checkout: Path) -> str | None:
    path = checkout / VERSION_FILE
    if not path.is_file():
        return None
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return None


def _static_version(checkout: Path) -> str | None:
    """A literal ``version = "..."`` in pyproject.toml or setup.py (``version="..."``)."""
    for name, pattern in (("pyproject.toml", _PYPROJECT_VERSION), ("setup.py", _SETUP_VERSION)):
        path = checkout / name
        match = pattern.search(path.read_text(encoding="utf-8")) if path.is_file() else None
        if match:
            return match.group(1)
    return None


def read_autoround_version(checkout: Path) -> str:
    """The checkout's version: ``auto_round/version.py``, else a literal in pyproject.toml/setup.py, else unknown."""
    return _version_py(checkout) or _static_version(checkout) or UNKNOWN


def supported_range() -> str:
    """The auto-round versions this tool declares (its ``auto-round`` requirement in pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires("autoround-scaffold") or []
    except PackageNotFoundError:
        return FALLBACK_RANGE
    from packaging.requirements import Requirement

    for line in requirements:
        requirement = Requirement(line)
        if requirement.name == "auto-round" and not requirement.marker:
            return str(requirement.specifier)
    return FALLBACK_RANGE


def check_version(version: str, checkout: Path, *, force: bool) -> str:
    """Refuse (exit 2) a checkout outside :func:`supported_range` or of unknown version, unless ``force``.

    Returns a note for the user when ``force`` let such a checkout through, else ``""``.
    """
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    wanted = supported_range()
    try:
        inside = Version(version) in SpecifierSet(wanted, prereleases=True)
    except InvalidVersion:
        inside = False
    if inside:
        return ""
    what = "of unknown version" if version == UNKNOWN else f"is auto-round {version}"
    problem = f"{checkout} {what}, outside the range this tool supports (auto-round{wanted})"
    if not force:
        raise ScaffoldError(problem, "patch", hint="--force patches it anyway")
    return f"{problem}; patched anyway (--force)"


def check_checkout(checkout: Path, *, force: bool) -> tuple[str, str]:
    """``(version, note)`` of an AutoRound source tree, refused when it is none or (without ``force``)
    when :func:`check_version` refuses its version."""
    if not (checkout / "auto_round").is_dir():
        raise ScaffoldError(f"{checkout} is not an AutoRound checkout (no auto_round/ package)", "patch")
    version = read_autoround_version(checkout)
    return version, check_version(version, checkout, force=force)


def _git_status(checkout: Path) -> list[str]:
    try:
        status = subprocess.run(
            ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=all"],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise ScaffoldError("git is not installed; pass --allow-dirty to patch without it", "patch") from None
    if status.returncode != 0:
        raise ScaffoldError(f"{checkout} is not a git work tree", "patch", hint="pass --allow-dirty to patch it anyway")
    return status.stdout.splitlines()


def require_clean_tree(checkout: Path, targets: list[str] | None = None) -> None:
    """Raise unless ``checkout`` is a git work tree with no uncommitted change to a tracked file and no
    untracked file at one of ``targets`` (the paths the patch writes, relative to the checkout)."""
    dirty = []
    for line in _git_status(checkout):
        code, path = line[:2], line[3:].strip('"')
        if code != "??":
            dirty.append(path)
        elif path in (targets or ()):
            dirty.append(f"{path} (untracked)")
    if dirty:
        raise ScaffoldError(
            f"{checkout} has uncommitted changes ({', '.join(dirty[:3])})",
            "patch",
            hint="commit or stash them, or pass --allow-dirty",
        )
