"""Stock AutoRound on the tiny instance, the ground truth every other detector is checked against.

Runs last. When stock AutoRound crashes or under-quantizes the tiny instance and no earlier detector found a
reason, this reports the failure itself (the exception and where it was raised, or the modules the export left
plain), so ``inspect`` never calls an architecture fine that stock AutoRound breaks. The run is ``amp=False``
(float32) like the replay probes: the verdict does not depend on the machine's bf16 support.
"""

from __future__ import annotations

from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.measure.stock import CRASH, stock_on_tiny


def detect(ctx: InspectContext) -> list[Finding]:
    if any(f.severity is not Severity.OK for f in ctx.findings):
        return []  # an earlier finding explains it; its generated test measures the fix on the export
    stock = stock_on_tiny(ctx)
    if stock is None or stock.ok or _autoround_calls_it_multimodal(ctx):
        return []
    evidence = {
        "status": stock.status,
        "share": stock.share,
        "unpacked": stock.unpacked,
        "exception": stock.exception,
        "raised_at": stock.raised_at,
        "not_counted": stock.not_counted,
    }
    if stock.status == CRASH:
        summary = f"stock AutoRound crashes on the tiny instance: {stock.exception}"
        summary += f" (raised at {stock.raised_at})" if stock.raised_at else ""
        severity = Severity.FAILS
    else:
        summary = f"stock AutoRound packs {stock.share:.1%} of the block weights; {stock.detail()}"
        severity = Severity.SILENT
    return [
        Finding(
            mode=Mode.STOCK_RUN,
            severity=severity,
            summary=summary,
            fix="no rule of scaffold explains this failure: read the exception and its frame, then fix it by hand",
            modules=stock.unpacked,
            evidence=evidence,
            probe="tiny",
        )
    ]


def _autoround_calls_it_multimodal(ctx: InspectContext) -> bool:
    """AutoRound takes the model to its multimodal path (needs a processor): not a failure of the text model."""
    from scaffold.modes.mllm_misdetection.detect import autoround_mllm_verdict

    return autoround_mllm_verdict(ctx).multimodal
