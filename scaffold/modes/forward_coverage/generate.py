"""Forward coverage: a model forward that also runs block stacks ``model.forward`` never reaches.

AutoRound caches every block stack's inputs from a single ``model.forward``; a stack that forward
does not run (a draft tower, an MTP head, a second decoder used only at generation time) gets no
inputs and stays unquantized. When the unreached stack's blocks take the same inputs as a reached
stack's (evidence ``same_signature_as``) and the hidden sizes match, the generated
``_<type>_forward(model, *args, **kwargs)`` runs the model's own forward, then the unreached blocks on
the reached stack's output hidden states with the other inputs its first block got (captured by
hooks). ``_handle_special_model`` installs it as ``model.forward = partial(...)``. Otherwise the
function is a ``TODO(scaffold)`` skeleton that raises until a human writes it.
"""

from __future__ import annotations

from scaffold.codegen import identifier
from scaffold.codegen.handler import HANDLER_FUNCTION
from scaffold.codegen.templates import TODO, render_code
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding
from scaffold.plan.model import SPECIAL_MODEL_HANDLER, HandlerBranch, Plan, PlanItem, TopLevelFunction


def function_name(model_type: str) -> str:
    return f"_{identifier(model_type)}_forward"


def skeleton_reason(finding: Finding) -> str | None:
    """Why no forward can be derived from the evidence, or None when it can."""
    evidence = finding.evidence
    if not evidence.get("unreached"):
        return "the probe named no unreached stack"
    if not evidence.get("same_signature_as"):
        return "no reached stack takes the same block inputs as the unreached one"
    if not evidence.get("hidden_size_match"):
        return "the unreached stack's hidden size differs from the reached stack's"
    return None


def render_forward(finding: Finding, function: str) -> str:
    evidence = finding.evidence
    reason = skeleton_reason(finding)
    return render_code(
        "forward_coverage/forward_coverage.py.jinja",
        function=function,
        reached=evidence.get("same_signature_as") or "",
        unreached=[stack["path"] for stack in evidence.get("unreached") or []],
        skeleton=reason is not None,
        reason=reason or "",
        todo=TODO,
    )


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    function = function_name(plan.model_type)
    code = render_forward(finding, function)
    reason = skeleton_reason(finding)
    plan.edits.append(TopLevelFunction(file=SPECIAL_MODEL_HANDLER, name=function, code=code, before=HANDLER_FUNCTION))
    body = f"from functools import partial\n\nmodel.forward = partial({function}, model)"
    plan.edits.append(
        HandlerBranch(file=SPECIAL_MODEL_HANDLER, function=HANDLER_FUNCTION, model_type=plan.model_type, body=body)
    )
    unreached = [stack["path"] for stack in finding.evidence.get("unreached") or []]
    # no TEST_DATA: the prediction test is the check (the unreached stack's layers are in PREDICTED)
    generated = [
        f"{'skeleton ' if reason else ''}`{function}` in {SPECIAL_MODEL_HANDLER} running {', '.join(unreached)}",
        f'`if model_type == "{plan.model_type}": model.forward = partial({function}, model)` in `{HANDLER_FUNCTION}`',
    ]
    todos = [f"{TODO} in `{function}`: {reason}"] if reason else []
    plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, generated=generated, todos=todos))
