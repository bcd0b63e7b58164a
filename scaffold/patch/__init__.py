"""Patch an AutoRound checkout with a generation plan: libcst codemods, one diff, all-or-nothing writes.

Call :func:`apply_plan` (library) or :func:`run_patch` (CLI: prints and returns the exit code);
:func:`plan_to_json` / :func:`plan_from_json` move a plan through ``generated/<type>/edits.json``.
"""

from scaffold.patch.apply import apply_plan, write_patch
from scaffold.patch.checkout import check_checkout, read_autoround_version, require_clean_tree, supported_range
from scaffold.patch.command import run_patch
from scaffold.patch.outcome import APPLIED, CONFLICT, PRESENT, REPLACED, SKIPPED, EditStatus, PatchResult
from scaffold.patch.serialize import load_plan, plan_from_json, plan_to_json, save_plan

__all__ = [
    "APPLIED",
    "CONFLICT",
    "PRESENT",
    "REPLACED",
    "SKIPPED",
    "EditStatus",
    "PatchResult",
    "apply_plan",
    "check_checkout",
    "load_plan",
    "plan_from_json",
    "plan_to_json",
    "read_autoround_version",
    "require_clean_tree",
    "run_patch",
    "save_plan",
    "supported_range",
    "write_patch",
]
