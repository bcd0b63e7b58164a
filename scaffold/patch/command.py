"""The patch step as the CLI runs it: apply, print statuses and diff, pick the exit code."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.syntax import Syntax

from scaffold.errors import ScaffoldError
from scaffold.patch.apply import apply_plan, write_patch
from scaffold.patch.outcome import APPLIED, CHANGING, CONFLICT, PRESENT, REPLACED, PatchResult
from scaffold.plan.model import Plan

_STYLE = {APPLIED: "green", REPLACED: "yellow", PRESENT: "dim", CONFLICT: "red"}


def print_result(
    result: PatchResult, console: Console, *, show_diff: bool = False, made_for: str | None = None
) -> None:
    console.print(f"AutoRound {result.autoround_version} at {result.checkout}", highlight=False)
    if made_for and made_for != result.autoround_version:
        console.print(f"note: the edits were made for auto-round {made_for}", style="yellow", highlight=False)
    if result.version_note:
        console.print(f"note: {result.version_note}", style="yellow", markup=False, highlight=False)
    for status in result.statuses:
        style = _STYLE.get(status.status, "cyan")
        unwritten = status.status in CHANGING and not result.written
        line = status.one_line("to apply" if unwritten else None)
        console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)
    if show_diff and result.diff:
        console.print(Syntax(result.diff, "diff", word_wrap=False))


def run_patch(
    plan: Plan,
    checkout: Path,
    *,
    dry_run: bool = False,
    show_diff: bool = False,
    check: bool = False,
    force: bool = False,
    allow_dirty: bool = False,
    patch_dir: Path | None = None,
    console: Console | None = None,
) -> int:
    """Apply ``plan`` to ``checkout`` for the CLI and return the exit code.

    0: done (or nothing to do); 1: ``check`` found pending changes. Conflicts without ``force`` raise
    :class:`ScaffoldError` (exit 2) after the statuses are printed, as does a checkout outside the supported
    auto-round range (before anything). ``patch_dir`` receives ``autoround.patch`` (not with ``check``).
    """
    console = console or Console()
    result = apply_plan(plan, checkout, dry_run=dry_run, check=check, force=force, allow_dirty=allow_dirty)
    print_result(result, console, show_diff=show_diff or dry_run, made_for=plan.autoround_version)
    if result.blocked:
        where = ", ".join(status.where for status in result.conflicts)
        message = f"{len(result.conflicts)} conflicting edit(s), nothing written: {where}"
        raise ScaffoldError(message, "patch", hint="--force replaces them")
    if check:
        console.print("changes pending" if result.pending else "checkout is up to date")
        return 1 if result.pending else 0
    if patch_dir is not None and (saved := write_patch(result, patch_dir)) is not None:
        console.print(f"patch saved to {saved}")
    if result.written:
        console.print(f"[green]wrote {len(result.written)} file(s)[/green]")
    elif not result.pending:
        console.print("nothing to do: every edit is already present")
    return 0
