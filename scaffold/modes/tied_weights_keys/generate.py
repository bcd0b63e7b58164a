"""tied_weights_keys: convert list-style ``_tied_weights_keys`` to the dict transformers 5 reads, at load time.

The fix runs where AutoRound prepares every model it quantizes: a function ``_tie_<type>_weights_keys`` in
``special_model_handler.py``, called from ``_handle_special_model`` for the model type (the runtime plugin wraps
that function the same way). It sets, on each recorded class whose attribute is still a list, the dict
``{target: <input embedding weight>}``: what the 4.x list meant. A class without an input embedding gets a
``TODO(scaffold)`` skeleton instead. All findings of one model share the function; a later finding regenerates
it with the merged table. ``TEST_DATA["tied_weights_keys"]`` records the classes and their dicts for the check.
"""

from __future__ import annotations

from scaffold.codegen import identifier
from scaffold.codegen.handler import put_handler_function
from scaffold.codegen.templates import TODO, render_code
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode
from scaffold.plan.model import Plan, PlanItem

KEY = Mode.TIED_WEIGHTS_KEYS.value


def function_name(model_type: str) -> str:
    return f"_tie_{identifier(model_type)}_weights_keys"


def render_function(function: str, classes: dict[str, dict[str, str]], missing: list[str]) -> str:
    return render_code(
        "tied_weights_keys/tied_weights_keys.py.jinja", function=function, classes=classes, missing=missing, todo=TODO
    )


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    evidence = finding.evidence
    name, keys, source = evidence["class"], list(evidence["tied_weights_keys"]), evidence.get("source")
    function = function_name(plan.model_type)
    facts = plan.test_data.setdefault(KEY, {"function": function, "classes": {}, "missing": []})
    if source:
        facts["classes"][name] = {key: source for key in keys}
    elif name not in facts["missing"]:
        facts["missing"].append(name)
    where = put_handler_function(plan, function, render_function(function, facts["classes"], facts["missing"]))
    if source:
        generated = [f"{where} sets `{name}._tied_weights_keys = {facts['classes'][name]}` (was `{keys}`)"]
        todos: list[str] = []
    else:
        generated = [f"skeleton {where} for `{name}`"]
        todos = [
            f"{TODO} in `{function}`: `{name}` has no input embedding weight to tie `{keys}` to; "
            "name the source of each tied weight"
        ]
    plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, generated=generated, todos=todos))
