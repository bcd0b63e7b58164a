"""Block replay: make AutoRound's per-block replay feed each block inputs it can run on.

AutoRound caches the first block's inputs from a calibration forward and replays every block with
``compressors/utils.block_forward``. Inputs it cannot split or reshape per sample break that replay:

- ``alibi`` (e.g. transformers' Bloom): the cache reshapes the ``[batch * heads, 1, keys]`` bias with
  ``batch_size`` although calibration forwards one sample at a time, and ``block_forward`` reshapes it
  again for an older 4-D layout, so heads and samples get mixed (``The expanded size of the tensor (8)
  must match the existing size (4)``). The fix drops the bias from what AutoRound caches (a forward
  pre-hook on each block) and rebuilds it inside the block from its mask and hidden states.
- ``zero_dim_tensor`` / ``python_list`` / ``int_mask``: inputs that are the same for every sample are kept out of the
  cache the same way and handed back to the block unchanged. The detector records the value every block of
  the stack gets in a real forward (``per_block_values``): the same for every block -> handed back as is;
  an offset plus or minus the block's position (a layer index counted up or down) -> each block rebuilds its own;
  anything else -> skeleton. Inputs the model passes positionally are named from the block's forward first.
- ``looped_block`` (a recurrent core run several times per forward, weights shared): AutoRound caches a block's
  inputs at every call, where its tuning expects one entry per sample; the constant rewrite then also wraps a
  block's later calls in one forward in an object AutoRound does not cache, so it caches each first call only.
- ``previous_block_output`` (e.g. keys/values shared across layers): forward hooks carry the named elements
  of each block's output over to the next block, matched per sample by its hidden-states input.
- ``shared_state`` (e.g. a KV-sharing dict the model's forward creates once and every block reads or writes):
  each replayed block gets a fresh object of the state's class, holding for each of its samples the entries the
  earlier blocks wrote; gradient-free forwards record those entries per sample, matched to the next block's
  samples by its hidden-states input, as the carry fix does.
- ``per_block_input`` (e.g. sliding-window and full-attention layers with their own masks or rotary tables,
  hybrid stacks where attention and SSM layers get different masks): a forward pre-hook on each later block
  re-derives the inputs that differ per block (measured on the tiny model) by running the stack owner's own
  forward from the replayed hidden states as ``inputs_embeds``, every block's forward swapped for a recorder.
  The keys are measured on the tiny batch and on a padded calibration sample (an all-ones mask reaches a hybrid
  stack's linear-attention and attention layers alike, as None).
- anything else (unknown causes): a ``TODO(scaffold)`` skeleton that raises.

The ``_handle_special_model`` branch is keyed by the plan's model type and, where it differs, by the type AutoRound
resolves for the model as built (a text model built from a multimodal target: ``qwen3_5_text`` for ``qwen3_5``).

The fix is data for ``_handle_special_model``: TopLevelFunctions plus a HandlerBranch calling
``_patch_<type>_block_replay(model)``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from scaffold.codegen import identifier
from scaffold.codegen.handler import HANDLER_FUNCTION
from scaffold.codegen.templates import TODO, render_code
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode
from scaffold.plan.model import SPECIAL_MODEL_HANDLER, HandlerBranch, Plan, PlanItem, TopLevelFunction

CARRY_MAX_ROWS = 1024  # per-sample output rows a carry fix keeps per block (bounds memory outside calibration)
CONSTANT_CAUSES = {
    "zero_dim_tensor": "zero-dim tensor",
    "python_list": "Python list",
    "python_scalar": "Python number",
    "int_mask": "integer mask",
}


@dataclass(frozen=True)
class InputKind:
    """What the probe recorded about one block input."""

    type: str
    shape: tuple[int, ...] | None


def input_kind(value: Any) -> InputKind:
    """Parse one ``inputs`` evidence value: ``"Tensor[8, 1, 32]"``, ``"list"``, ``{"type", "shape"}``, ..."""
    if isinstance(value, dict):
        shape = value.get("shape")
        return InputKind(str(value.get("type", "")), tuple(shape) if shape is not None else None)
    text = str(value)
    match = re.search(r"[\[(]([\d,\s]*)[\])]", text)
    shape = tuple(int(n) for n in match.group(1).replace(",", " ").split()) if match else None
    return InputKind(re.split(r"[\[(]", text, maxsplit=1)[0].strip(), shape)


def _one_line(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split()).replace("\\", "/").replace('"', "'")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ReplayFix:
    """Which rewrite a finding gets and what it needs."""

    rewrite: str  # alibi | constant | carry | skeleton
    stack: str
    cause: str
    alibi_key: str = "alibi"
    alibi_layout: str = "flat"
    constant_keys: tuple[str, ...] = ()
    index_keys: dict[str, int | float] = field(default_factory=dict)  # key -> offset: block i gets offset + i
    index_steps: dict[str, int] = field(default_factory=dict)  # key -> -1 where block i gets offset - i instead
    carried: dict[str, int] = field(default_factory=dict)  # key -> index of the previous block's output element
    hidden_dim: int = 0  # batch_first: the batch dimension of the hidden states the model passes its blocks
    move_dims: dict[str, int] = field(default_factory=dict)  # batch_first: other inputs' batch dims (not 0)
    owner: str = ""  # rebuild: the module holding the stack, whose forward builds the per-block inputs
    owner_params: tuple[str, ...] = ()  # rebuild: its forward parameters
    output_arity: int = 0  # rebuild: 0 when a block returns a tensor, else the length of its output tuple
    state_key: str = ""  # state: the block input holding the per-forward state object
    state_type: str = ""  # state: its class as module.qualname
    first_call_only: bool = False  # constant: a looped stack; AutoRound caches each block's first call per forward
    reason: str = ""


def choose_fix(finding: Finding) -> ReplayFix:
    fix = _choose_fix(finding)
    if int(finding.evidence.get("calls_per_forward") or 1) > 1:
        if fix.rewrite == "constant":
            fix.first_call_only = True
        elif fix.rewrite != "skeleton":
            reason = f"the forward calls each block of `{fix.stack}` several times; a {fix.rewrite} fix caches all"
            return ReplayFix("skeleton", fix.stack, fix.cause, constant_keys=fix.constant_keys, reason=reason)
    return fix


def _choose_fix(finding: Finding) -> ReplayFix:
    evidence = finding.evidence
    stack = evidence.get("stack") or (finding.modules[0].rsplit(".", 1)[0] if finding.modules else "")
    cause = evidence.get("cause") or "unknown"
    inputs = {name: input_kind(value) for name, value in (evidence.get("inputs") or {}).items()}
    named = list(evidence.get("cause_inputs") or [])
    if cause == "alibi":
        key = next((name for name in [*named, *inputs] if "alibi" in name), "alibi")
        shape = inputs[key].shape if key in inputs else None
        layout = "flat" if shape is None else {3: "flat", 4: "batched"}.get(len(shape))
        if layout:
            return ReplayFix("alibi", stack, cause, alibi_key=key, alibi_layout=layout)
        return ReplayFix("skeleton", stack, cause, reason=f"ALiBi input {key} has an unknown layout {shape}")
    mishandled = list(evidence.get("mishandled") or {})
    if cause == "sequence_first":
        return _batch_first_fix(stack, cause, evidence, mishandled)
    if cause in CONSTANT_CAUSES or (cause == "unknown" and mishandled):
        if cause == "zero_dim_tensor":
            found = [name for name, kind in inputs.items() if kind.shape == ()]
        elif cause == "int_mask":
            found = [name for name in inputs if "mask" in name]
        else:
            found = [name for name, kind in inputs.items() if kind.type.lower() in ("list", "tuple", "int", "float")]
        keys = list(dict.fromkeys([*named, *mishandled])) or found
        if keys:
            return _constant_or_index_fix(stack, cause, keys, evidence.get("per_block_values") or {})
        what = CONSTANT_CAUSES.get(cause, "mishandled")
        return ReplayFix("skeleton", stack, cause, reason=f"the probe named no {what} input")
    if cause == "looped_block":  # nothing to stash: each block's first call of a forward is the one cached
        return ReplayFix("constant", stack, cause)
    state = evidence.get("shared_state") or {}
    if cause == "shared_state" and state.get("batch_first"):
        return _state_fix(stack, cause, state, evidence.get("rebuild") or {})
    if cause == "shared_state":
        reason = f"the entries blocks write into {state.get('key')} do not all hold tensors batched along dim 0"
        return ReplayFix("skeleton", stack, cause, constant_keys=tuple(named), reason=reason)
    if cause == "per_block_input" and evidence.get("rebuild"):
        return _rebuild_fix(stack, cause, named, evidence["rebuild"])
    carried = evidence.get("carried_from_previous") or {}
    if cause == "previous_block_output" and carried:
        return ReplayFix("carry", stack, cause, carried={str(k): int(v) for k, v in carried.items()})
    detail = evidence.get("cause_detail") or f"no generic rewrite for cause {cause!r}"
    return ReplayFix("skeleton", stack, cause, constant_keys=tuple(named), reason=_one_line(detail, 200))


def _rebuild_fix(stack: str, cause: str, named: list[str], facts: dict[str, Any]) -> ReplayFix:
    """Re-derive each later block's own inputs from the stack owner's forward, or say why that cannot work."""
    keys = tuple(dict.fromkeys([*(facts.get("keys") or []), *named]))  # measured per block + what the replay named
    owner = facts.get("owner", "")
    if not keys:
        reason = f"no input of `{stack}` differs per block in a real forward, yet the replay of a later block diverges"
    elif "inputs_embeds" not in (facts.get("owner_params") or []):
        reason = f"`{owner or 'the model'}`.forward takes no inputs_embeds, so it cannot rebuild {', '.join(keys)}"
    elif facts.get("blocks_reached") != facts.get("blocks"):
        reason = f"the forward runs {facts.get('blocks_reached')} of the {facts.get('blocks')} blocks of `{stack}`"
    else:
        fix = ReplayFix("rebuild", stack, cause, constant_keys=keys)
        fix.owner, fix.owner_params, fix.output_arity = owner, tuple(facts["owner_params"]), facts["output_arity"]
        return fix
    return ReplayFix("skeleton", stack, cause, constant_keys=keys, reason=reason)


def _state_fix(stack: str, cause: str, state: dict[str, Any], facts: dict[str, Any]) -> ReplayFix:
    """Carry the shared state per sample; inputs that differ per block are re-derived by the owner's forward from
    each sample's first-block hidden states (carried along), so they match what the model gives every block."""
    keys = tuple(k for k in facts.get("keys") or [] if k != state["key"])
    fix = ReplayFix("state", stack, cause, constant_keys=keys, state_key=str(state["key"]))
    fix.state_type = str(state["type"])
    if not keys:
        return fix
    rebuilt = _rebuild_fix(stack, cause, list(keys), facts)
    if rebuilt.rewrite == "skeleton":
        return ReplayFix("skeleton", stack, cause, constant_keys=keys, reason=rebuilt.reason)
    fix.owner, fix.owner_params, fix.output_arity = rebuilt.owner, rebuilt.owner_params, rebuilt.output_arity
    return fix


def _batch_first_fix(stack: str, cause: str, evidence: dict[str, Any], mishandled: list[str]) -> ReplayFix:
    """Blocks fed sequence-first: hand AutoRound batch-first tensors, keep uncacheable inputs out of its cache."""
    dims = dict(evidence.get("batch_dims") or {})
    if not dims:
        return ReplayFix("skeleton", stack, cause, reason="the probe measured no batch dimension of the block inputs")
    hidden, hidden_dim = next(iter(dims.items()))
    move = {key: int(dim) for key, dim in dims.items() if key != hidden and dim not in (None, 0)}
    fix = _constant_or_index_fix(stack, cause, mishandled, evidence.get("per_block_values") or {})
    if fix.rewrite == "skeleton":
        return fix
    fix.rewrite, fix.hidden_dim, fix.move_dims = "batch_first", int(hidden_dim), move
    fix.owner = stack.rpartition(".")[0]
    return fix


def block_step(values: list) -> int | None:
    """1 when block ``i`` of the stack gets ``values[0] + i`` (a layer index), -1 for ``values[0] - i`` (an index
    counted down, as a coda numbering its blocks -1, -2, ...), else None."""
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        return None
    return next((s for s in (1, -1) if all(v == values[0] + s * i for i, v in enumerate(values))), None)


def block_offset(values: list) -> int | float | None:
    """``values[0]`` when block ``i`` of the stack gets ``values[0] + i`` or ``values[0] - i``, else None."""
    return values[0] if block_step(values) is not None else None


def _index_rule(fix: ReplayFix, key: str, offset: int | float) -> str:
    return f"{key} = {offset} {'-' if fix.index_steps.get(key) == -1 else '+'} i"


def _constant_or_index_fix(stack: str, cause: str, keys: list[str], per_block: dict[str, list]) -> ReplayFix:
    """Split ``keys`` into inputs the same for every block and per-block indices; skeleton for anything else."""
    constant, index, down = [], {}, []
    for key in keys:
        values = per_block.get(key)
        if values is None or len(set(map(repr, values))) == 1:
            constant.append(key)
        elif block_offset(values) is not None:
            index[key] = block_offset(values)
            if block_step(values) == -1:
                down.append(key)
        else:
            reason = f"{key} differs per block of `{stack}` ({values[:6]}) with no rule scaffold can derive"
            return ReplayFix("skeleton", stack, cause, constant_keys=tuple(keys), reason=reason)
    fix = ReplayFix("constant", stack, cause, constant_keys=tuple(constant), index_keys=index)
    fix.index_steps = {key: -1 for key in down}
    return fix


def covered_by(fix: ReplayFix, done: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An earlier full fix of the same stack that already rewrites every input this later block's finding names.

    The detector replays later blocks with the first block's cached inputs; when the first block's failure is
    fixed (e.g. ALiBi rebuilt in every block of the stack), a later block failing on the same inputs needs nothing.
    """
    if fix.cause != "per_block_input":
        return None
    for earlier in done:
        if earlier["stack"] == fix.stack and not earlier["skeleton"]:
            if set(fix.constant_keys) <= set(earlier["inputs"]):
                return earlier
    return None


def _constant_note(fix: ReplayFix) -> list[str]:
    """What the constant rewrite does with each kind of input, for its docstring."""
    parts = []
    if fix.constant_keys:
        parts.append(f"{', '.join(fix.constant_keys)}: the same for every sample and block, handed back as seen")
    if fix.index_keys:
        rebuilt = ", ".join(_index_rule(fix, key, offset) for key, offset in fix.index_keys.items())
        parts.append(f"block i of the stack rebuilds its own {rebuilt} (a per-block index)")
    if fix.first_call_only:
        parts.append("the forward calls each block several times (a looped stack): AutoRound caches the first call")
    return parts


def render_fix(fix: ReplayFix, prefix: str, exception: str) -> str:
    return render_code(
        "block_replay/block_replay.py.jinja",
        prefix=prefix,
        stack=fix.stack,
        cause=CONSTANT_CAUSES.get(fix.cause, fix.cause),
        rewrite=fix.rewrite,
        alibi_key=fix.alibi_key,
        alibi_layout=fix.alibi_layout,
        constant_keys=list(fix.constant_keys),
        index_keys=dict(fix.index_keys),
        index_steps=dict(fix.index_steps),
        carried=dict(fix.carried),
        owner=fix.owner,
        state_key=fix.state_key,
        state_module=fix.state_type.rpartition(".")[0],
        state_class=fix.state_type.rpartition(".")[2],
        hidden_dim=fix.hidden_dim,
        move_dims=dict(fix.move_dims),
        stack_in_owner=fix.stack[len(fix.owner) + 1 :] if fix.owner else fix.stack,
        owner_kwargs=[k for k in ("attention_mask", "position_ids", "use_cache") if k in fix.owner_params],
        output_arity=fix.output_arity,
        first_call_only=fix.first_call_only,
        constant_note=_constant_note(fix),
        max_rows=CARRY_MAX_ROWS,
        exception=_one_line(exception),
        todo=TODO,
    )


def top_level_functions(source: str, file: str, before: str | None = None) -> list[TopLevelFunction]:
    """One :class:`TopLevelFunction` per ``def`` in ``source``, in order."""
    tree = ast.parse(source)
    lines = source.splitlines()
    functions = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            code = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"
            functions.append(TopLevelFunction(file=file, name=node.name, code=code, before=before))
    return functions


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    fix = choose_fix(finding)
    done = plan.test_data.setdefault(Mode.BLOCK_REPLAY.value, [])
    earlier = covered_by(fix, done)
    if earlier:
        note = f"same inputs as the first block of `{fix.stack}`, already rewritten by `{earlier['function']}`"
        plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, generated=[note]))
        return
    prefix = identifier(plan.model_type) + (f"_{len(done) + 1}" if done else "")
    exception = finding.evidence.get("exception") or f"max_abs_err {finding.evidence.get('max_abs_err')}"
    source = render_fix(fix, prefix, exception)
    functions = top_level_functions(source, SPECIAL_MODEL_HANDLER, before=HANDLER_FUNCTION)
    plan.edits.extend(functions)
    entry = f"_patch_{prefix}_block_replay"
    model_types = list(dict.fromkeys([plan.model_type, str(finding.evidence.get("model_type") or plan.model_type)]))
    for model_type in model_types:  # the patch is idempotent: a model matching both is patched once
        branch = HandlerBranch(SPECIAL_MODEL_HANDLER, HANDLER_FUNCTION, model_type=model_type, body=f"{entry}(model)")
        plan.edits.append(branch)
    inputs = [fix.alibi_key] if fix.rewrite == "alibi" else [*fix.constant_keys, *fix.index_keys, *fix.carried]
    inputs += [fix.state_key] if fix.rewrite == "state" else []
    done.append(
        {
            "stack": fix.stack,
            "cause": fix.cause,
            "rewrite": fix.rewrite,
            "function": entry,
            "inputs": inputs,
            "skeleton": fix.rewrite == "skeleton",
        }
    )
    if fix.carried:
        done[-1]["carried"] = dict(fix.carried)
    if fix.index_keys:
        done[-1]["per_block"] = dict(fix.index_keys)
    what = {
        "alibi": "rebuilds ALiBi inside each block",
        "constant": f"passes {', '.join(inputs)} uncached" if inputs else "caches each block's first call only",
        "carry": f"carries {', '.join(inputs)} from each block's output to the next block",
        "state": f"builds {fix.state_key} (a fresh `{fix.state_type.rpartition('.')[2]}` holding the entries earlier "
        "blocks wrote for each sample) for each block AutoRound replays"
        + (
            f", and re-derives {', '.join(fix.constant_keys)} per block from `{fix.owner}`'s own forward run from each "
            "sample's first-block hidden states"
            if fix.constant_keys
            else ""
        ),
        "rebuild": f"re-derives {', '.join(inputs)} per block from `{fix.owner or 'the model'}`'s own forward",
        "batch_first": f"hands AutoRound batch-first hidden states (the model passes them with the batch along dim "
        f"{fix.hidden_dim}) and moves them back inside each block"
        + (f"; passes {', '.join(inputs)} uncached" if inputs else ""),
    }
    generated = [f"`{f.name}` in {SPECIAL_MODEL_HANDLER}" for f in functions]
    generated += [f'`if model_type == "{t}": {entry}(model)` in `{HANDLER_FUNCTION}`' for t in model_types]
    if len(model_types) > 1:
        generated.append(
            f"the model as built resolves to model type `{model_types[1]}` (a text model's own config), so the "
            f"branch is registered for it as well as for `{plan.model_type}`"
        )
    if fix.rewrite in what:
        generated.append(f"the patch {what[fix.rewrite]} of `{fix.stack}`")
    if fix.index_keys:
        rebuilt = ", ".join(_index_rule(fix, key, offset) for key, offset in fix.index_keys.items())
        generated.append(f"block i of `{fix.stack}` rebuilds its own {rebuilt} (measured per block on the tiny model)")
    if fix.first_call_only:
        generated.append(
            f"the forward calls each block of `{fix.stack}` several times: AutoRound caches each block's first call "
            "of a forward only, one entry per sample; the later calls run uncached"
        )
    if fix.move_dims:
        moved = ", ".join(f"{key} (batch along dim {dim})" for key, dim in fix.move_dims.items())
        generated.append(f"inputs moved to batch-first with the hidden states: {moved}")
    if fix.rewrite in ("constant", "batch_first") and fix.constant_keys:
        generated.append("assumes those inputs are the same for every calibration sample (checked by the test)")
    todos = [f"{TODO} in `{entry}`: {fix.reason}"] if fix.rewrite == "skeleton" else []
    plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, generated=generated, todos=todos))
