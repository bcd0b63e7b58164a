"""Ignore layers: keep routers, multi-token-prediction layers and odd shapes in full precision.

Emits one ``register_ignore_layers(...)`` rule for the model. AutoRound applies only the FIRST
rule that matches a model, and its generic "ignore every ``.gate`` of a MoE" fallback runs only
when no rule matched, so the rule lists the MoE routers itself: a generated function returns
their exact module names at run time (exact names avoid substring hits such as
``mlp.gate`` in ``mlp.gate_proj``).
"""

from __future__ import annotations

from types import SimpleNamespace

from scaffold import autoround_api
from scaffold.codegen import identifier, py_list_lines, py_str, py_tuple
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode
from scaffold.plan.model import SPECIAL_MODEL_HANDLER, IgnoreRule, Plan, PlanItem, TopLevelFunction


def function_name(model_type: str) -> str:
    return f"_get_{identifier(model_type)}_router_layers"


def router_suffix(path: str) -> str:
    """``model.layers.3.mlp.gate`` -> ``.mlp.gate`` (after the block index); a path outside a stack stays whole."""
    parts = path.split(".")
    numeric = [i for i, part in enumerate(parts) if part.isdigit()]
    if not numeric or numeric[-1] == len(parts) - 1:
        return path
    return "." + ".".join(parts[numeric[-1] + 1 :])


def router_function_code(model_type: str, suffixes: list[str]) -> str:
    return (
        f"def {function_name(model_type)}(model):\n"
        f'    """Exact names of the MoE routers of `{model_type}`: AutoRound must not quantize them."""\n'
        f"    suffixes = {py_tuple(suffixes)}\n"
        "    return [name for name, _ in model.named_modules() if name.endswith(suffixes)]\n"
    )


def matcher_source(plan: Plan, ctx: InspectContext | None) -> str:
    """``ModelTypeMatcher`` on the model type, or ``ArchitectureMatcher`` when remote code reuses a stock type or
    the loaded config's ``model_type`` (what ``ModelTypeMatcher`` reads) is not the plan's key."""
    from scaffold.codegen import model_key

    if ctx is not None and ctx.target.has_remote_code:
        from scaffold.resolve.target import known_model_types

        if plan.model_type in known_model_types():
            return f"ArchitectureMatcher({py_str(plan.model_class)}, mode={py_str('in')})"
    if ctx is not None and model_key.loaded_model_types(ctx) != {plan.model_type}:
        return f"ArchitectureMatcher({py_str(model_key.architectures(plan, ctx)[0])}, mode={py_str('in')})"
    return f"ModelTypeMatcher({py_str(plan.model_type)}, mode={py_str('full')})"


def rule_call(matcher: str, entries: list[str]) -> str:
    lines = ["register_ignore_layers(", "    matchers=[", f"        {matcher},", "    ],", "    ignore_layers=["]
    lines += py_list_lines(entries, 8)
    lines += ["    ],", ")"]
    return "\n".join(lines) + "\n"


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    evidence = finding.evidence
    suffixes = list(dict.fromkeys(router_suffix(path) for path in evidence.get("routers", [])))
    routers = set(evidence.get("routers", [])) | {suffix.lstrip(".") for suffix in suffixes}
    # Routers are matched by exact name below; as substrings they would also hit e.g. ``mlp.gate_proj``.
    patterns = [p for p in dict.fromkeys(evidence.get("layer_patterns", [])) if p.lstrip(".") not in routers]
    entries = [py_str(pattern) for pattern in patterns]
    generated: list[str] = []
    if suffixes:
        name = function_name(plan.model_type)
        code = router_function_code(plan.model_type, suffixes)
        plan.edits.append(TopLevelFunction(file=SPECIAL_MODEL_HANDLER, name=name, code=code, before=None))
        entries.append(name)
        generated.append(f"`{name}` returning every module named `*{'`, `*'.join(suffixes)}`")
    todos: list[str] = []
    if not entries:
        todos.append("the inspection named no layer to ignore; list the layers AutoRound must keep in full precision")
    else:
        matcher = matcher_source(plan, ctx)
        call = rule_call(matcher, entries)
        plan.edits.append(IgnoreRule(file=SPECIAL_MODEL_HANDLER, model_type=plan.model_type, call=call))
        generated.append(f"`register_ignore_layers` rule ({matcher}) ignoring {', '.join(entries)}")
        plan.test_data[Mode.IGNORE_LAYERS.value] = {"patterns": patterns, "router_suffixes": suffixes}
    if ctx is not None and autoround_api.predefined_ignore_rule_matches(SimpleNamespace(config=ctx.config)):
        todos.append(
            "an ignore rule already registered in AutoRound matches this model and wins (first match); "
            "merge the generated layers into that rule"
        )
    plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, generated=generated, todos=todos))
