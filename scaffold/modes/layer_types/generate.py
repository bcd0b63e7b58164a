"""Custom layer types: convert exact-``F.linear`` projection classes to ``nn.Linear`` before quantization.

Registering a class name in ``INNER_SUPPORTED_LAYER_TYPES`` makes auto-round 0.16 tune its layers, but
the ``auto_round`` export still writes them as plain weights (measured on 0.16.1, tiny Llama whose 14
block projections are an exact custom class: 0 packed stock, 0 packed with the class registered,
14 packed and block share 1.0 with the conversion). So the
generated fix is a conversion run from ``_handle_special_model``: every layer of a class the probe
proved to compute ``F.linear(x, weight, bias)`` is replaced by an ``nn.Linear`` holding the same
weight objects under the same module name. ``INNER_SUPPORTED_LAYER_TYPES`` is not edited: after the
conversion no module of the class is left for it to match. Classes that are not exact get a
``TODO(scaffold)`` skeleton that raises until a human folds their extra ops into a quantizable layer.

All findings of one model share one function ``_convert_<type>_linears``; a later finding
regenerates it with the merged class table.
"""

from __future__ import annotations

from typing import Any

from scaffold.codegen import identifier, tiny_module_paths
from scaffold.codegen.handler import put_handler_function
from scaffold.codegen.templates import TODO, render_code
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode
from scaffold.plan.model import Plan, PlanItem


def function_name(model_type: str) -> str:
    return f"_convert_{identifier(model_type)}_linears"


def conversion_facts(finding: Finding, ctx: InspectContext | None = None) -> dict[str, Any]:
    """What one finding contributes to the conversion table and the generated equivalence test.

    ``modules`` are the paths in the tiny instance the test builds when there is one (else the finding's).
    """
    evidence = finding.evidence
    cls_name = evidence.get("class") or (finding.classes[0] if finding.classes else "")
    return {
        "class": cls_name,
        "weight_attr": evidence.get("weight_attr") or "weight",
        "bias_attr": evidence.get("bias_attr"),
        "exact": bool(evidence.get("exact_linear")),
        "max_abs_err": evidence.get("max_abs_err"),
        "count": evidence.get("count"),
        "modules": tiny_module_paths(ctx, cls_name) or list(finding.modules),
    }


def render_conversion(function: str, conversions: list[dict[str, Any]]) -> str:
    exact = {c["class"]: {"weight": c["weight_attr"], "bias": c["bias_attr"]} for c in conversions if c["exact"]}
    inexact = {c["class"]: c["max_abs_err"] for c in conversions if not c["exact"]}
    return render_code("layer_types/layer_types.py.jinja", function=function, classes=exact, inexact=inexact, todo=TODO)


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    facts = conversion_facts(finding, ctx)
    function = function_name(plan.model_type)
    conversions = plan.test_data.setdefault(Mode.LAYER_TYPES.value, [])
    conversions.append({**facts, "function": function, "skeleton": not facts["exact"]})
    code = render_conversion(function, conversions)
    for conversion in conversions:
        conversion["skeleton"] = any(not c["exact"] for c in conversions)
    where = put_handler_function(plan, function, code)
    if facts["exact"]:
        generated = [f"{where} converts `{facts['class']}` ({facts['count'] or '?'} layers) to `nn.Linear`"]
        todos: list[str] = []
    else:
        generated = [f"skeleton {where} for `{facts['class']}`"]
        todos = [
            f"{TODO} in `{function}`: `{facts['class']}` is not exactly F.linear "
            f"(max abs err {facts['max_abs_err']}); fold its extra ops into a quantizable layer"
        ]
    plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, generated=generated, todos=todos))
