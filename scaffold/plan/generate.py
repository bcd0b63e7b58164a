"""The new-arch stage: inspect report + context -> Plan (via the generators) -> rendered adaptation folder.

``new_arch`` is what ``scaffold new-arch`` runs: inspect, one generator per non-ok finding
(``scaffold/modes/``), predict what AutoRound should pack on the tiny instance once adapted,
optionally patch an AutoRound checkout, and render ``generated/<slug>`` atomically.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaffold.codegen import py_literal, py_str
from scaffold.errors import ScaffoldError
from scaffold.inspection.context import InspectContext, tiny_or_none
from scaffold.inspection.findings import InspectReport, Mode, Severity
from scaffold.markers import TOLERANCE_LITERAL
from scaffold.modes import REGISTRY, ModeError, by_mode
from scaffold.modes.contract import GENERATED_TESTS
from scaffold.patch.checkout import supported_range
from scaffold.plan.model import Plan, PlanItem
from scaffold.plan.runtime_plugin import plugin_source
from scaffold.render.folder import Rendered, check_replaceable, render_folder
from scaffold.resolve.target import ResolvedTarget

TINY_GROUP_SIZE = 32  # the tiny instance's 64-wide layers quantize with groups of 32
SCHEME = "W4A16"
LINE_LENGTH = 120
PLUGIN_IMPORTS = ["import warnings", "from importlib.metadata import version"]  # the template's version check


@dataclass
class NewArchResult:
    report: InspectReport
    plan: Plan
    rendered: Rendered
    prediction: dict[str, Any] | None
    items: dict[int, list[PlanItem]] = field(default_factory=dict)  # finding index -> what its generator planned
    patch: Any = None  # scaffold.patch.PatchResult when --autoround was given
    notes: list[str] = field(default_factory=list)


def build_plan(report: InspectReport, ctx: InspectContext | None = None) -> tuple[Plan, dict[int, list[PlanItem]]]:
    """Run the generator of every non-ok finding; also returns the plan items each finding produced."""
    from scaffold.codegen import model_key

    key = model_key.plan_key(report.model_type, ctx)  # what AutoRound resolves for the loaded model
    plan = Plan(model_type=key, model_class=report.model_class, autoround_version=_installed_autoround())
    items: dict[int, list[PlanItem]] = {}
    for index, finding in enumerate(report.findings):
        if finding.severity is Severity.OK:
            continue
        before, test_data = len(plan.items), copy.deepcopy(plan.test_data)
        spec = by_mode(finding.mode)
        spec.generator.generate(finding, plan, ctx)
        broken = spec.test_data_problem(test_data, plan.test_data)
        if broken:  # TEST_DATA is keyed by mode: each check reads only TEST_DATA[<its mode value>]
            raise ModeError(broken)
        items[index] = plan.items[before:]
    model_key.generate(plan, ctx)  # keyed registrations reach a model whose config class has no model_type
    return plan, items


def _installed_autoround() -> str:
    from scaffold.versions import package_version

    return package_version("auto-round")


def _stacks(report: InspectReport, plan: Plan) -> list[str]:
    """Stack paths AutoRound quantizes once adapted (generated block detection, else its own)."""
    stacks = plan.test_data.get(Mode.BLOCK_DETECTION.value, {}).get("stacks")
    if stacks:
        return list(stacks)
    return list(dict.fromkeys(names[0].rsplit(".", 1)[0] for names in report.autoround_blocks if names))


def predict(report: InspectReport, plan: Plan, ctx: InspectContext | None) -> dict[str, Any] | None:
    """What the adapted AutoRound should pack on the tiny instance (``scaffold.plan.predict``), or None."""
    tiny = tiny_or_none(ctx)
    if tiny is None:
        return None
    from scaffold.plan.predict import expected_packing

    roles = {
        f.evidence["class"]: f.evidence["layout"]["roles"]
        for f in report.problems
        if f.mode is Mode.FUSED_MOE and f.evidence.get("layout", {}).get("roles")
    }
    layouts = {  # probed storage orientation and the experts the replacement builds, per experts class
        f.evidence["class"]: {
            "transposed": bool(f.evidence["layout"].get("transposed")),
            "experts": f.evidence["layout"].get("experts_with_weights"),
        }
        for f in report.problems
        if f.mode is Mode.FUSED_MOE and f.evidence.get("layout", {}).get("probed")
    }
    return expected_packing(tiny.model, _stacks(report, plan), TINY_GROUP_SIZE, plan.test_data, roles, layouts)


def _repo_root(path: Path) -> Path | None:
    for folder in [path, *path.parents]:
        if (folder / ".git").exists():
            return folder
    return None


def target_path_from(target: ResolvedTarget, out: Path) -> str:
    """Where the generated test finds a local target folder: relative to ``out`` inside the same repository
    (so the folder moves with the repo), else absolute; ``""`` for other targets."""
    if target.kind != "local" or target.model_dir is None:
        return ""
    model_dir, out = Path(target.model_dir).resolve(), out.resolve()
    root = _repo_root(model_dir)
    if root is None or root != _repo_root(out if out.exists() else out.parent):
        return model_dir.as_posix()
    return Path(os.path.relpath(model_dir, out)).as_posix()


def constants_source(
    slug: str, target: ResolvedTarget, target_path: str, plan: Plan, prediction: dict | None, group_size: int
) -> str:
    has_plugin = bool(plan.edits or plan.plugin_parts)
    rows = [
        "# The target as given to new-arch, and its folder (relative to this one inside the same repo).",
        _long_ok(f"TARGET = {py_str(target.spec)}"),
        _long_ok(f"TARGET_PATH = {py_str(target_path)}"),
        f"TRUST_REMOTE_CODE = {target.trust_remote_code}",
        f"PLUGIN = {py_str(slug + '_autoround') if has_plugin else None}",
        f"GROUP_SIZE = {group_size}",
        f"TOLERANCE = {TOLERANCE_LITERAL}",
        "# What AutoRound must pack on the tiny instance (scaffold.plan.predict at generation time).",
        f"PREDICTED = {py_literal(prediction)}",
        "# Facts the checks below use (written by the generators).",
        f"TEST_DATA = {py_literal(plan.test_data)}",
    ]
    return "\n".join(rows)


def _long_ok(line: str) -> str:
    """A constant line that ruff cannot wrap (one long string) gets a ``noqa`` instead of failing E501."""
    return f"{line}  # noqa: E501" if len(line) > LINE_LENGTH else line


def report_data(
    report: InspectReport, plan: Plan, items: dict[int, list[PlanItem]], prediction: dict | None
) -> dict[str, Any]:
    """What REPORT.md and the README rows show (the renderer adds ``todos``)."""
    findings = []
    for index, finding in enumerate(report.findings):
        produced = items.get(index, [])
        findings.append(
            {
                "mode": finding.mode.value,
                "severity": finding.severity.value,
                "summary": finding.summary,
                "fix": finding.fix,
                "modules": finding.modules[:6],
                "more_modules": max(0, len(finding.modules) - 6),
                "generated": [text for item in produced for text in item.generated],
                "todos": [text for item in produced for text in item.todos],
            }
        )
    return {
        "findings": findings,
        "problems": len(report.problems),
        "modes": sorted({f.mode.value for f in report.problems}),
        "edits": [edit.report_line() for edit in plan.edits],
        "files": [f.path for f in plan.files],
        "prediction": prediction,
        "model_share_before": round(report.model_share(), 4),
        "notes": report.notes,
        "edits_autoround_version": plan.autoround_version,
        "autoround_range": supported_range(),
    }


def render_adaptation(
    report: InspectReport,
    plan: Plan,
    items: dict[int, list[PlanItem]],
    target: ResolvedTarget,
    out: Path,
    *,
    prediction: dict | None,
    group_size: int = 128,
    extra_files: dict[str, str] | None = None,
    use_ruff: bool | None = None,
    dry_run: bool = False,
    force: bool = False,
    write_to: Path | None = None,
) -> Rendered:
    """Render the adaptation folder for ``plan`` into ``out`` (or ``write_to``, see :func:`render_folder`)."""
    from scaffold.versions import stack_versions

    versions = stack_versions()
    slug = target.slug
    source = plugin_source(plan, extra_imports=PLUGIN_IMPORTS)
    target_path = target_path_from(target, out)
    answers = {
        "slug": slug,
        "model_type": report.model_type,
        "model_class": report.model_class,
        "target": target.spec,
        "target_path": target_path,
        "trust_remote_code": target.trust_remote_code,
        "group_size": group_size,
        "scheme": SCHEME,
        "scaffold_version": versions["autoround_scaffold"],
        "autoround_version": versions["auto_round"],
        "transformers_version": versions["transformers"],
        "torch_version": versions["torch"],
    }
    data = {
        "has_plugin": bool(plan.edits or plan.plugin_parts),
        "plugin_imports": source.imports,
        "plugin_body": source.body(),
        "test_constants": constants_source(slug, target, target_path, plan, prediction, group_size),
        "checked_modes": {test: REGISTRY.checked_by(test) for test in GENERATED_TESTS},  # the TEST_DATA keys each reads
        "report": report_data(report, plan, items, prediction),
    }
    return render_folder(
        out,
        answers=answers,
        data=data,
        plan=plan,
        inspect_json=report.to_json(),
        extra_files=extra_files,
        use_ruff=use_ruff,
        dry_run=dry_run,
        force=force,
        write_to=write_to,
    )


def new_arch(
    target: ResolvedTarget,
    out: Path | None = None,
    *,
    group_size: int = 128,
    autoround: Path | None = None,
    dry_run: bool = False,
    check: bool = False,
    force: bool = False,
    allow_dirty: bool = False,
    use_ruff: bool | None = None,
    write_to: Path | None = None,
) -> NewArchResult:
    """Inspect ``target``, generate its adaptation into ``out`` (default ``generated/<slug>``), optionally patch.

    ``write_to`` renders into that absent folder as if it were ``out`` (``scaffold update``).
    """
    from scaffold.inspection.stage import inspect_with_context

    out = Path(out) if out is not None else Path("generated") / target.slug
    if write_to is None and not (dry_run or check):  # fail before the slow inspection; --check writes nothing
        check_replaceable(out, force)
    if autoround is not None:
        from scaffold.patch import check_checkout

        check_checkout(Path(autoround), force=force)
    report, ctx = inspect_with_context(target, group_size=group_size, dynamic=True)
    plan, items = build_plan(report, ctx)
    prediction = predict(report, plan, ctx)
    extra: dict[str, str] = {}
    patch = None
    if autoround is not None:  # every refusal (version, conflict, dirty tree) comes before anything is written
        from scaffold.patch import apply_plan, require_clean_tree

        patch = apply_plan(plan, autoround, dry_run=True, force=force)
        plan.autoround_version = patch.autoround_version
        if patch.blocked:
            first = patch.conflicts[0].one_line()
            raise ScaffoldError(f"{len(patch.conflicts)} edit(s) conflict with {autoround}: {first}", "patch")
        if patch.diff:
            extra["autoround.patch"] = patch.diff
        if patch.targets and not (dry_run or check or allow_dirty):
            require_clean_tree(Path(autoround), patch.targets)
    rendered = render_adaptation(
        report,
        plan,
        items,
        target,
        out,
        prediction=prediction,
        group_size=group_size,
        extra_files=extra,
        use_ruff=use_ruff,
        dry_run=dry_run or check,
        force=force,
        write_to=write_to,
    )
    if autoround is not None and not (dry_run or check):
        from scaffold.patch import apply_plan

        patch = apply_plan(plan, autoround, force=force, allow_dirty=allow_dirty)
    notes = [] if prediction is not None else ["no tiny instance: the generated test has no prediction to check"]
    return NewArchResult(report, plan, rendered, prediction, items, patch, notes)
