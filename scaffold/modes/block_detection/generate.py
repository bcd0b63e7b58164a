"""Block detection: tell AutoRound which stacks hold the blocks it should quantize.

Generates ``_get_<type>_multimodal_block(model, quant_vision=False)`` and registers it in
``SPECIAL_MULTIMODAL_BLOCK[<model_type>]``, which ``get_block_names`` consults first. Block
names are computed at run time from the stack paths, so the real model and the tiny instance
(same paths, fewer blocks) both work.
"""

from __future__ import annotations

from scaffold import autoround_api
from scaffold.codegen import identifier, py_list_lines, py_str
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode
from scaffold.plan.model import SPECIAL_MODEL_HANDLER, DictEntry, Plan, PlanItem, TopLevelFunction

REGISTRY = "SPECIAL_MULTIMODAL_BLOCK"


def function_name(model_type: str) -> str:
    return f"_get_{identifier(model_type)}_multimodal_block"


def is_vision_stack(path: str) -> bool:
    """Stacks AutoRound itself would skip unless ``quant_vision`` (same name keys as its VLM search)."""
    return any(key in path.lower() for key in autoround_api.vision_mm_keys())


def function_code(
    model_type: str,
    stack_paths: list[str],
    exclude_classes: list[str] | None = None,
    keep_classes: dict[str, list[str]] | None = None,
) -> str:
    """Source of the block-name function for ``stack_paths`` (forward order).

    ``exclude_classes``: block classes left out of every stack (layers of another signature, e.g. MTP
    layers appended to the decoder stack); they stay in float through the ignore rule.
    ``keep_classes``: for a container that also holds other children (embedding and head in one Sequential,
    a custom module), the block classes that count, per stack path.
    """
    name = function_name(model_type)
    lines = [
        f"def {name}(model, quant_vision=False):",
        f'    """Block names of `{model_type}` for AutoRound: one list per block stack, in forward order."""',
    ]
    vision = [path for path in stack_paths if is_vision_stack(path)]
    if vision:
        lines += ["    stacks = ["]
        lines += py_list_lines([f"({py_str(path)}, {path in vision})" for path in stack_paths], 8)
        lines += [
            "    ]",
            "    paths = [path for path, is_vision in stacks if quant_vision or not is_vision]",
        ]
    else:
        lines += ["    paths = ["]
        lines += py_list_lines([py_str(path) for path in stack_paths], 8)
        lines += ["    ]"]
    conditions = []
    if keep_classes:
        lines += ["    kept = {"]
        lines += [
            f"        {py_str(path)}: {{{', '.join(py_str(c) for c in sorted(classes))}}},"
            for path, classes in keep_classes.items()
        ]
        lines += ["    }"]
        conditions.append("(path not in kept or type(block).__name__ in kept[path])")
    if exclude_classes:
        lines += ["    excluded = {" + ", ".join(py_str(name) for name in sorted(exclude_classes)) + "}"]
        conditions.append("type(block).__name__ not in excluded")
    if conditions:
        lines += [
            "    return [",
            "        [",
            '            f"{path}.{name}"',
            "            for name, block in model.get_submodule(path).named_children()",
            f"            if {' and '.join(conditions)}",
            "        ]",
            "        for path in paths",
            "    ]",
        ]
    else:
        children = "model.get_submodule(path).named_children()"
        lines.append(f'    return [[f"{{path}}.{{name}}" for name, _ in {children}] for path in paths]')
    return "\n".join(lines) + "\n"


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    stacks = [stack["path"] for stack in finding.evidence.get("stacks", [])]
    if not stacks:
        plan.items.append(
            PlanItem(
                mode=finding.mode.value,
                summary=finding.summary,
                todos=["the inspection found no block stack to register; list the decoder stacks by hand"],
            )
        )
        return
    name = function_name(plan.model_type)
    excluded = sorted(
        {name for stack in finding.evidence.get("stacks", []) for name in stack.get("exclude_classes", [])}
    )
    kept = {stack["path"]: stack["classes"] for stack in finding.evidence.get("stacks", []) if stack.get("classes")}
    code = function_code(plan.model_type, stacks, excluded, kept)
    plan.edits.append(TopLevelFunction(file=SPECIAL_MODEL_HANDLER, name=name, code=code, before=REGISTRY))
    plan.edits.append(DictEntry(file=SPECIAL_MODEL_HANDLER, registry=REGISTRY, key=plan.model_type, value=name))
    facts: dict[str, list[str]] = {"stacks": [path for path in stacks if not is_vision_stack(path)]}
    if excluded:  # left out of the blocks (MTP layers): not counted as block weights in the share
        facts["exclude_classes"] = excluded
    plan.test_data[Mode.BLOCK_DETECTION.value] = facts
    plan.items.append(
        PlanItem(
            mode=finding.mode.value,
            summary=finding.summary,
            generated=[
                f"`{name}` returning the blocks of {', '.join(f'`{path}`' for path in stacks)}",
                f'`{REGISTRY}["{plan.model_type}"]` in {SPECIAL_MODEL_HANDLER}',
            ],
        )
    )
