"""The inspect stage: resolve → meta build → detectors (static, then probes) → report."""

from __future__ import annotations

from scaffold import autoround_api
from scaffold.build.meta import CPU_FALLBACK_NOTES, build_meta, count_modules, count_parameters
from scaffold.errors import ScaffoldError, first_line
from scaffold.inspection.context import InspectContext, tiny_or_none
from scaffold.inspection.findings import Finding, InspectReport
from scaffold.modes import FAILURE_MODES
from scaffold.resolve.target import ResolvedTarget
from scaffold.versions import stack_versions


def load_context(target: ResolvedTarget, *, group_size: int = 128, dynamic: bool = True) -> InspectContext:
    meta = build_meta(target.config, trust_remote_code=target.trust_remote_code, where=target.spec)
    notes = [CPU_FALLBACK_NOTES[meta]] if meta in CPU_FALLBACK_NOTES else []
    return InspectContext(target=target, meta_model=meta, group_size=group_size, dynamic=dynamic, notes=notes)


def run_detectors(ctx: InspectContext) -> list[Finding]:
    """Every registered detector's findings; a detector that crashes is reported in one line, not a traceback."""
    findings: list[Finding] = ctx.findings  # later detectors (stock_run) read what earlier ones found
    for failure_mode in FAILURE_MODES:
        try:
            findings.extend(failure_mode.detector.detect(ctx))
        except ScaffoldError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug of this tool, reported as one line naming the detector
            raise ScaffoldError(
                f"the {failure_mode.mode.value} detector failed on {ctx.target.spec}: {first_line(exc)}",
                stage="inspect",
                hint="a bug in autoround-scaffold: please report it with this line",
            ) from exc
    return findings


def inspect_target(target: ResolvedTarget, *, group_size: int = 128, dynamic: bool = True) -> InspectReport:
    """Run every detector on ``target`` and collect the report."""
    return inspect_with_context(target, group_size=group_size, dynamic=dynamic)[0]


def inspect_with_context(
    target: ResolvedTarget, *, group_size: int = 128, dynamic: bool = True
) -> tuple[InspectReport, InspectContext]:
    """:func:`inspect_target`, also returning the context (meta model, tiny instance) generators use."""
    from scaffold.inspection.coverage import block_stacks, compute_coverage

    ctx = load_context(target, group_size=group_size, dynamic=dynamic)
    findings = run_detectors(ctx)
    if dynamic:
        tiny_or_none(ctx)  # every dynamic verdict needs it: a build failure makes the report inconclusive
    tiny_info: dict = {}
    if ctx._tiny is not None:
        tiny_info = ctx._tiny.describe()
    report = InspectReport(
        target=target.spec,
        model_type=target.model_type,
        model_class=ctx.model_class,
        config_class=type(target.config).__name__,
        parameters=count_parameters(ctx.meta_model),
        modules=count_modules(ctx.meta_model),
        autoround_blocks=autoround_api.get_block_names(ctx.meta_model),
        block_stacks=[s.to_dict() for s in block_stacks(ctx.meta_model)],
        coverage=compute_coverage(ctx),
        findings=findings,
        versions=stack_versions(),
        dynamic=ctx._tiny is not None,
        tiny=tiny_info,
        notes=ctx.notes,
        inconclusive=f"the tiny instance could not be built: {ctx._tiny_error}" if ctx._tiny_error else None,
        stock=_stock_outcome(ctx),
    )
    return report, ctx


def _stock_outcome(ctx: InspectContext) -> dict | None:
    """What stock AutoRound did with the tiny instance (float32, memoized with the stock_run probe), for the report."""
    from scaffold.measure.stock import stock_on_tiny

    if ctx._tiny is None:
        return None
    stock = stock_on_tiny(ctx)
    if stock is None:
        return None
    data = stock.to_json()
    data.pop("amp_dtype", None)  # float32 by construction; the host's precision is reported apart
    return data
