"""MLLM misdetection: a text-only model AutoRound mistakes for a multimodal one (and then asks for a processor).

Adds the model type to ``_LLM_ONLY_MODEL_TYPES`` in ``auto_round/utils/model.py``, the exemption
``is_mllm_model`` checks first.
"""

from __future__ import annotations

from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode
from scaffold.plan.model import Plan, PlanItem, SequenceItem

UTILS_MODEL = "auto_round/utils/model.py"
REGISTRY = "_LLM_ONLY_MODEL_TYPES"


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    plan.edits.append(SequenceItem(file=UTILS_MODEL, registry=REGISTRY, item=plan.model_type))
    plan.test_data[Mode.MLLM_MISDETECTION.value] = {"llm_only": True}
    reason = finding.evidence.get("reason")
    plan.items.append(
        PlanItem(
            mode=finding.mode.value,
            summary=finding.summary,
            generated=[
                f'`"{plan.model_type}"` added to `{REGISTRY}` in {UTILS_MODEL}'
                + (f" (AutoRound matched {reason})" if reason else "")
            ],
        )
    )
