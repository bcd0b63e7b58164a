"""Check a target's ``auto_map`` before any of its code is imported.

Remote code may come only from the target itself: its folder, or the same Hub repository (read at the
pinned revision). ``repo--module.Class`` references to another repository or folder are refused unless
``--allow-remote-code-from`` names it; malformed entries are one clear line. Same-repository references
are rewritten to plain ``module.Class`` so transformers loads the files already fetched at the pinned revision.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaffold.errors import ScaffoldError

ALLOW_ENV = "SCAFFOLD_ALLOW_REMOTE_CODE_FROM"  # whitespace-separated, read where no list is passed (generated tests)
ALLOW_FLAG = "--allow-remote-code-from"
_MODULE = re.compile(r"^[\w-]+(/[\w-]+)*$")
_CLASS = re.compile(r"^[A-Za-z_]\w*$")
_EXPECTED = "expected 'module.Class' or 'owner/repo--module.Class'"


@dataclass(frozen=True)
class Origin:
    """Where remote code may come from: the target folder, and its Hub id for Hub targets."""

    folder: Path
    repo_id: str | None = None

    def describe(self) -> str:
        return f"Hub repo '{self.repo_id}'" if self.repo_id else f"the target folder {self.folder}"


def allowed_from_env() -> tuple[str, ...]:
    return tuple(os.environ.get(ALLOW_ENV, "").split())


def _is_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or os.sep in name and Path(name).expanduser().exists()


def _same(name: str, other: str) -> bool:
    """Whether two repository names (Hub ids or folders) designate the same source."""
    if _is_path(name) or _is_path(other):
        return Path(name).expanduser().resolve() == Path(other).expanduser().resolve()
    return name.casefold() == other.casefold()


def _split(key: str, reference: Any, where: str) -> tuple[str | None, str]:
    """``(repo or None, module.Class)`` of one reference; raise on anything transformers would misread."""

    def bad(why: str) -> ScaffoldError:
        return ScaffoldError(f"{where}: auto_map[{key!r}] = {reference!r} is malformed: {why} ({_EXPECTED})", "config")

    if not isinstance(reference, str):
        raise bad(f"a {type(reference).__name__}, not a string")
    repo, sep, rest = reference.rpartition("--") if "--" in reference else (None, "", reference)
    if sep and (not repo or "--" in repo):
        raise bad("the repository part is empty" if not repo else "'--' appears more than once")
    module, dot, name = rest.rpartition(".")
    if not dot or "." in module or not _MODULE.match(module) or not _CLASS.match(name):
        raise bad(f"{rest!r} is not 'module.Class'")
    return repo, rest


def _references(key: str, value: Any, where: str) -> list[tuple[int | None, Any]]:
    """The references of one entry: a string, or ``[slow, fast]`` (``AutoTokenizer``; ``None`` allowed)."""
    if isinstance(value, list | tuple):
        if not value or len(value) > 2:
            raise ScaffoldError(f"{where}: auto_map[{key!r}] = {value!r} is malformed: {_EXPECTED}", "config")
        return [(index, item) for index, item in enumerate(value) if item is not None]
    return [(None, value)]


def check_auto_map(
    auto_map: Any, origin: Origin, allowed: Iterable[str], where: str
) -> dict[str, Any] | list[Any] | None:
    """Validate ``auto_map`` (from ``where``) and return it with same-repository prefixes removed.

    Raises :class:`ScaffoldError` (exit 2) for a malformed entry, or one that loads code from another
    repository or folder that ``allowed`` does not name.
    """
    if auto_map is None:
        return None
    if isinstance(auto_map, list | tuple):  # legacy tokenizer form: [slow, fast]
        return list(check_auto_map({"AutoTokenizer": list(auto_map)}, origin, allowed, where)["AutoTokenizer"])
    if not isinstance(auto_map, dict):
        raise ScaffoldError(f"{where}: auto_map must be an object, not {type(auto_map).__name__}", "config")
    allowed = list(allowed)
    cleaned: dict[str, Any] = {}
    for key, value in auto_map.items():
        new_value = list(value) if isinstance(value, list | tuple) else value
        for index, reference in _references(key, value, where):
            repo, local = _split(key, reference, where)
            if repo is None:
                continue
            if _same(repo, str(origin.folder)) or origin.repo_id and _same(repo, origin.repo_id):
                if index is None:
                    new_value = local
                else:
                    new_value[index] = local
            elif not any(_same(repo, name) for name in allowed):
                raise ScaffoldError(
                    f"{where}: auto_map[{key!r}] loads code from '{repo}', not from {origin.describe()}; refused",
                    "resolve",
                    hint=f"pass {ALLOW_FLAG} {repo} to allow it",
                )
        cleaned[key] = new_value
    return cleaned
