"""Shared cache keys: block inputs AutoRound must pass whole to every block instead of splitting per sample.

Registers ``SPECIAL_SHARED_CACHE_KEYS[<model class>] = (keys...)``; the registry is keyed by
the model CLASS name, not the model type.
"""

from __future__ import annotations

from scaffold.codegen import py_tuple
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode
from scaffold.plan.model import SPECIAL_MODEL_HANDLER, DictEntry, Plan, PlanItem

REGISTRY = "SPECIAL_SHARED_CACHE_KEYS"


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    model_class = finding.evidence.get("model_class") or plan.model_class
    keys = list(dict.fromkeys(finding.evidence.get("keys", [])))
    if not keys:
        plan.items.append(
            PlanItem(
                mode=finding.mode.value,
                summary=finding.summary,
                todos=["the probe named no shared input; find which block input is shared across samples"],
            )
        )
        return
    plan.edits.append(DictEntry(file=SPECIAL_MODEL_HANDLER, registry=REGISTRY, key=model_class, value=py_tuple(keys)))
    plan.test_data.setdefault(Mode.SHARED_CACHE_KEYS.value, {})[model_class] = keys
    plan.items.append(
        PlanItem(
            mode=finding.mode.value,
            summary=finding.summary,
            generated=[f'`{REGISTRY}["{model_class}"] = {py_tuple(keys)}` in {SPECIAL_MODEL_HANDLER}'],
        )
    )
