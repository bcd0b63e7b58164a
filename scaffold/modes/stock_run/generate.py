"""Stock failure no rule explains: nothing can be generated; the report names it as a to-do by hand."""

from __future__ import annotations

from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding
from scaffold.plan.model import Plan, PlanItem


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    evidence = finding.evidence
    if evidence.get("exception"):
        where = f" at {evidence['raised_at']}" if evidence.get("raised_at") else ""
        todo = f"stock AutoRound raises `{evidence['exception']}`{where}; no rule of scaffold derives a fix"
    else:
        todo = f"stock AutoRound leaves {', '.join(evidence.get('unpacked', [])[:4])} unpacked; no rule explains it"
    plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, todos=[todo]))
