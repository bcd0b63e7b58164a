"""``apply_plan``: compute every change of a plan in memory, show one diff, then write all or nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from scaffold.errors import ScaffoldError
from scaffold.patch.checkout import check_checkout, read_autoround_version, require_clean_tree
from scaffold.patch.diff import combined_diff
from scaffold.patch.locate import Where
from scaffold.patch.outcome import APPLIED, CONFLICT, PRESENT, REPLACED, SKIPPED, EditStatus, PatchResult
from scaffold.patch.readme import README_FILES, add_supported_row
from scaffold.patch.serialize import PATCH_FILE
from scaffold.patch.source_edit import edit_source
from scaffold.plan.model import Edit, Plan

__all__ = ["apply_plan", "read_autoround_version", "require_clean_tree", "write_all", "write_patch"]

Changes = dict[str, tuple[str | None, str]]  # path -> (old text or None for a new file, new text)


def _read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def _inside(checkout: Path, relative: str) -> Path:
    path = (checkout / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(checkout.resolve()):
        raise ScaffoldError(f"plan path {relative!r} is outside the AutoRound checkout", "patch")
    return checkout / relative


def _edits_by_file(edits: list[Edit]) -> dict[str, list[Edit]]:
    grouped: dict[str, list[Edit]] = {}
    for edit in edits:
        grouped.setdefault(edit.file, []).append(edit)
    return grouped


def _plan_files(plan: Plan, checkout: Path, force: bool, changes: Changes) -> list[EditStatus]:
    statuses = []
    for generated in plan.files:
        path = _inside(checkout, generated.path)
        old = _read(path) if path.is_file() else None
        if old == generated.content:
            statuses.append(EditStatus("file", generated.path, "new file", PRESENT, 1))
        elif old is not None and not force:
            statuses.append(EditStatus("file", generated.path, "new file", CONFLICT, 1, "exists with other content"))
        else:
            changes[generated.path] = (old, generated.content)
            statuses.append(EditStatus("file", generated.path, "new file", APPLIED if old is None else REPLACED))
    return statuses


def _plan_edits(plan: Plan, checkout: Path, version: str, force: bool, changes: Changes) -> list[EditStatus]:
    statuses = []
    for relative, edits in _edits_by_file(plan.edits).items():
        path = _inside(checkout, relative)
        if not path.is_file():
            raise ScaffoldError(f"{relative} not found in {checkout} (AutoRound {version})", "patch")
        old = _read(path)
        result = edit_source(old, edits, Where(relative, version), force=force)
        statuses.extend(result.statuses)
        if result.code != old:
            changes[relative] = (old, result.code)
    return statuses


def _readme_rows(plan: Plan, checkout: Path, changes: Changes) -> list[EditStatus]:
    statuses = []
    target = f"supported-models row for {plan.model_type}"
    for name in README_FILES:
        path = checkout / name
        if not path.is_file():
            continue
        row = add_supported_row(_read(path), plan.model_type, plan.model_class)
        if row.added:
            changes[name] = (_read(path), row.text)
        status = APPLIED if row.added else PRESENT if row.present else SKIPPED
        statuses.append(EditStatus("readme", name, target, status, detail=row.note))
    return statuses


def _make_parents(target: Path, made: list[Path]) -> None:
    """Create the missing folders above ``target``, recording them (outermost first) in ``made``."""
    missing = [folder for folder in target.parents if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir()
        made.append(folder)


def write_all(checkout: Path, changes: Changes) -> list[str]:
    """Write every change or none: stage temporary files first, then swap them in.

    On any exception, KeyboardInterrupt included, the swapped files are restored, temporary files and new
    folders removed, and the exception goes on (an ``OSError`` as a one-line :class:`ScaffoldError`).
    """
    staged: list[tuple[Path, Path]] = []
    made: list[Path] = []
    done: list[Path] = []
    try:
        for relative, (_old, new) in sorted(changes.items()):
            target = checkout / relative
            _make_parents(target, made)
            temporary = target.with_name(f".{target.name}.scaffold-tmp")
            staged.append((temporary, target))
            with open(temporary, "w", encoding="utf-8", newline="") as handle:
                handle.write(new)
            if target.exists():
                shutil.copymode(target, temporary)
        for temporary, target in staged:
            os.replace(temporary, target)
            done.append(target)
    except BaseException as exc:
        _undo(checkout, changes, done, made)
        if isinstance(exc, OSError):
            raise ScaffoldError(f"writing the patch failed, nothing was changed: {exc}", "patch") from None
        raise
    finally:
        for temporary, _target in staged:
            temporary.unlink(missing_ok=True)
    return sorted(changes)


def _undo(checkout: Path, changes: Changes, done: list[Path], made: list[Path]) -> None:
    by_path = {checkout / relative: old for relative, (old, _new) in changes.items()}
    for target in done:
        old = by_path[target]
        if old is None:
            target.unlink(missing_ok=True)
        else:
            with open(target, "w", encoding="utf-8", newline="") as handle:
                handle.write(old)
    for temporary in (target.with_name(f".{target.name}.scaffold-tmp") for target in by_path):
        temporary.unlink(missing_ok=True)
    for folder in reversed(made):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def apply_plan(
    plan: Plan,
    checkout: Path,
    *,
    dry_run: bool = False,
    check: bool = False,
    force: bool = False,
    allow_dirty: bool = False,
    readme: bool = True,
) -> PatchResult:
    """Apply ``plan`` (new files, registry edits, README rows) to the AutoRound ``checkout``.

    Everything is computed in memory first. Nothing is written with ``dry_run`` or ``check``, when an
    edit conflicts with what the checkout has (unless ``force``), or when there is nothing to change.
    A checkout outside the supported auto-round range (or of unknown version) is refused unless ``force``.
    Writing needs a clean git tree (no untracked file where the patch writes either) unless ``allow_dirty``.
    """
    checkout = Path(checkout)
    version, version_note = check_checkout(checkout, force=force)
    changes: Changes = {}
    statuses = _plan_files(plan, checkout, force, changes)
    statuses += _plan_edits(plan, checkout, version, force, changes)
    if readme:
        statuses += _readme_rows(plan, checkout, changes)
    result = PatchResult(checkout, version, combined_diff(changes), statuses, version_note=version_note)
    result.targets = sorted(changes)
    if dry_run or check or result.blocked or not changes:
        return result
    if not allow_dirty:
        require_clean_tree(checkout, result.targets)
    result.written = write_all(checkout, changes)
    return result


def write_patch(result: PatchResult, folder: Path) -> Path | None:
    """Save the diff as ``folder/autoround.patch`` (for ``git apply``); None when there is no change."""
    if not result.diff:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PATCH_FILE
    path.write_text(result.diff, encoding="utf-8")
    return path
