"""Where a survey row came from: the tool's commit (and uncommitted changes), the time and the host.

A row is only as good as the code that produced it, so rows carry the scaffold checkout's git commit and
whether its sources had uncommitted changes (a hash of them), and resuming a survey skips a row only when
both match. An installed (non-git) tool is identified by its package version.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

VERSION_KEY = "scaffold_commit"  # the versions entry resuming is keyed on, besides the package versions


@dataclass(frozen=True)
class ToolIdentity:
    commit: str  # git commit of the scaffold checkout, or "v<version>" when the tool is not a git checkout
    dirty: bool  # its sources (the package, the templates, pyproject.toml) differ from the commit
    changes: str = ""  # a short hash of those differences ("" when clean)

    @property
    def key(self) -> str:
        return f"{self.commit}+{self.changes}" if self.dirty else self.commit


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _source_paths(root: Path, package: Path) -> list[str]:
    """The tool's own sources inside the checkout; generated output (e.g. the survey's results) never counts."""
    candidates = [package, root / "templates", root / "pyproject.toml"]
    return [str(path.relative_to(root)) for path in candidates if path.exists()]


def tool_identity() -> ToolIdentity:
    """The commit and dirtiness of the scaffold checkout this code runs from."""
    import scaffold

    package = Path(scaffold.__file__).resolve().parent
    top = _git(package, "rev-parse", "--show-toplevel")
    commit = _git(package, "rev-parse", "HEAD")
    if not top or not commit:
        return ToolIdentity(commit=f"v{scaffold.__version__}", dirty=False)
    root = Path(top.strip())
    paths = _source_paths(root, package)
    status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *paths) or ""
    if not status.strip():
        return ToolIdentity(commit=commit.strip()[:12], dirty=False)
    digest = hashlib.sha1((_git(root, "diff", "HEAD", "--", *paths) or "").encode())
    for line in sorted(status.splitlines()):
        if line.startswith("??"):
            path = root / line[3:].strip()
            digest.update(line.encode() + (path.read_bytes() if path.is_file() else b""))
    return ToolIdentity(commit=commit.strip()[:12], dirty=True, changes=digest.hexdigest()[:10])


def survey_versions(tool: ToolIdentity | None = None) -> dict[str, str]:
    """The package versions rows are keyed on, plus the tool's commit."""
    from scaffold.versions import stack_versions

    return {**stack_versions(), VERSION_KEY: (tool or tool_identity()).key}


def timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host_info(amp_dtype: str | None = None) -> dict[str, Any]:
    """CPU model, AutoRound's bf16 answer and the amp dtype it tuned in (``amp_dtype``: what a run really used)."""
    from scaffold.measure.precision import host_precision

    host = host_precision().to_json()
    if amp_dtype:
        host["amp_dtype"] = amp_dtype
    return host
