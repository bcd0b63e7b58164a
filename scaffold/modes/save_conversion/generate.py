"""save_conversion: save the export under the model's own module names (no reverse weight conversion).

The fix runs where AutoRound prepares every model it quantizes: a function ``_keep_<type>_module_names`` in
``special_model_handler.py``, called from ``_handle_special_model`` for the model type (the runtime plugin wraps
that function the same way). It sets ``model._weight_conversions = []``: ``revert_weight_conversion`` then finds
no transform to reverse and saves every tensor under its own name. ``TEST_DATA["save_conversion"]`` records the
joins (checkpoint and target patterns, the joined layers) for the check.
"""

from __future__ import annotations

from scaffold.codegen import identifier
from scaffold.codegen.handler import put_handler_function
from scaffold.codegen.templates import render_code
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode
from scaffold.plan.model import Plan, PlanItem

KEY = Mode.SAVE_CONVERSION.value


def function_name(model_type: str) -> str:
    return f"_keep_{identifier(model_type)}_module_names"


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    evidence = finding.evidence
    function = function_name(plan.model_type)
    facts = plan.test_data.setdefault(KEY, {"function": function, "joins": []})
    join = {k: list(evidence[k]) for k in ("checkpoint", "targets", "operations", "layers")}
    if join not in facts["joins"]:
        facts["joins"].append(join)
    code = render_code("save_conversion/save_conversion.py.jinja", function=function, joins=facts["joins"])
    where = put_handler_function(plan, function, code)
    joined = f"{', '.join(join['targets'])} -> {', '.join(join['checkpoint'])}"
    generated = [f"{where} empties `model._weight_conversions`: the export keeps the module names ({joined} unjoined)"]
    plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, generated=generated, todos=[]))
