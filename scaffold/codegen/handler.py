"""A fix that runs where AutoRound prepares every model: a function in ``special_model_handler.py`` called from
``_handle_special_model`` for the model type (the runtime plugin wraps that function the same way)."""

from __future__ import annotations

from scaffold.plan.model import SPECIAL_MODEL_HANDLER, HandlerBranch, Plan, TopLevelFunction

HANDLER_FUNCTION = "_handle_special_model"


def put_handler_function(plan: Plan, function: str, code: str) -> str:
    """Add ``function`` (source ``code``) and its call for ``plan.model_type``, or replace the function's code when
    an earlier finding added it (findings of one mode share the function). Returns where it lives, for REPORT.md."""
    edit = TopLevelFunction(file=SPECIAL_MODEL_HANDLER, name=function, code=code, before=HANDLER_FUNCTION)
    old = next((i for i, e in enumerate(plan.edits) if isinstance(e, TopLevelFunction) and e.name == function), None)
    if old is None:
        call = HandlerBranch(
            SPECIAL_MODEL_HANDLER, HANDLER_FUNCTION, model_type=plan.model_type, body=f"{function}(model)"
        )
        plan.edits += [edit, call]
    else:
        plan.edits[old] = edit
    return f"`{function}` in {SPECIAL_MODEL_HANDLER}, called from `{HANDLER_FUNCTION}`"
