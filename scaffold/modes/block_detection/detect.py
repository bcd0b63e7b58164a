"""Does AutoRound's ``get_block_names`` return exactly the decoder stacks found in the module tree?"""

from __future__ import annotations

import inspect

from torch import nn

from scaffold import autoround_api
from scaffold.inspection.context import InspectContext, tiny_or_none
from scaffold.inspection.coverage import scan_model
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.inspection.stacks import BlockStack, block_stacks


def _stack_path(block_names: list[str]) -> str:
    first = block_names[0]
    return first.rsplit(".", 1)[0] if "." in first else ""


def _required_inputs(module: nn.Module) -> tuple[str, ...]:
    """Names of the forward parameters a caller must pass (no default, not *args/**kwargs)."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def foreign_blocks(model: nn.Module, blocks: list[str]) -> list[dict]:
    """Blocks of a mixed stack whose forward takes other inputs than the stack's first block.

    AutoRound replays every block of a stack with the inputs cached for the first one, so a layer of
    another signature (e.g. multi-token-prediction layers appended to ``model.layers``) breaks the replay.
    """
    modules = [(name, model.get_submodule(name)) for name in blocks]
    reference = _required_inputs(modules[0][1])
    return [
        {"block": name, "class": type(module).__name__, "inputs": list(_required_inputs(module))}
        for name, module in modules
        if type(module) is not type(modules[0][1]) and _required_inputs(module) != reference
    ]


def decoder_stacks(ctx: InspectContext) -> tuple[list[BlockStack], dict[str, str]]:
    """Block stacks of the meta model: by structure, kept where the tiny instance's forward chains them.

    Without a tiny instance, the structural stacks (custom containers left out: they need the probe).
    """
    if "stack_chain" not in ctx.probe_results:
        from scaffold.inspection.stack_chain import confirmed_stacks

        tiny = tiny_or_none(ctx)
        if tiny is None:
            ctx.probe_results["stack_chain"] = None
        else:
            kept, states = confirmed_stacks(tiny.model, tiny.forward)
            ctx.probe_results["stack_chain"] = ({s.path for s in kept}, states)
    probed = ctx.probe_results["stack_chain"]
    if probed is None:
        return scan_model(ctx.meta_model).stacks, {}
    paths, states = probed
    return [s for s in block_stacks(ctx.meta_model, with_custom=True) if s.path in paths], states


def _stack_entry(stack: BlockStack) -> dict:
    entry = {"path": stack.path, "block_class": stack.block_class, "count": stack.count, "container": stack.container}
    if stack.partial or stack.container == "custom":
        entry["classes"] = stack.block_classes  # the container holds other children: keep these classes only
    return entry


def detect(ctx: InspectContext) -> list[Finding]:
    blocks = [names for names in autoround_api.get_block_names(ctx.meta_model) if names]
    stacks_found, states = decoder_stacks(ctx)
    expected = [s for s in stacks_found if s.modality == "text"]
    returned = [_stack_path(names) for names in blocks]
    expected_paths = {s.path for s in expected}
    missing = [s.path for s in expected if s.path not in returned]
    wrong = [path for path in returned if path not in expected_paths]
    foreign = {s.path: foreign_blocks(ctx.meta_model, s.blocks) for s in expected if "|" in s.block_class}
    foreign = {path: found for path, found in foreign.items() if found}
    if not missing and not wrong and not foreign and blocks:
        return []
    stacks = [_stack_entry(s) for s in expected]
    for stack in stacks:
        if stack["path"] in foreign:
            stack["exclude_classes"] = sorted({entry["class"] for entry in foreign[stack["path"]]})
    if not blocks:
        summary = "AutoRound's get_block_names finds no blocks: nothing would be quantized block-wise"
    elif missing and not set(returned) & expected_paths:
        summary = f"AutoRound picks {', '.join(wrong)} as blocks and misses the decoder stack {', '.join(missing)}"
    elif missing:
        summary = f"AutoRound misses block stack(s) {', '.join(missing)}"
    elif wrong:
        summary = f"AutoRound returns {', '.join(wrong)} as blocks, which are not decoder stacks"
    else:
        mixed = [f"{path} mixes in {', '.join(sorted({e['class'] for e in found}))}" for path, found in foreign.items()]
        summary = f"AutoRound replays every block with the first block's inputs, but {'; '.join(mixed)} (other inputs)"
    return [
        Finding(
            mode=Mode.BLOCK_DETECTION,
            severity=Severity.FAILS,
            summary=summary,
            fix="register a SPECIAL_MULTIMODAL_BLOCK function that returns the stacks listed in evidence.stacks",
            modules=[s["path"] for s in stacks] + wrong,
            classes=sorted({s.block_class for s in expected}),
            evidence={
                "autoround_blocks": blocks,
                "stacks": stacks,
                "missing": missing,
                "wrong": wrong,
                "foreign_blocks": [entry for found in foreign.values() for entry in found],
                "forward": states,  # the chain probe per candidate stack: chained | unchained | not run
            },
        )
    ]
