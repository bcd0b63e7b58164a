"""Blocks replayed by AutoRound's own caching and ``block_forward`` crash or differ from the real forward.

Block 0 of each stack is cached and replayed as ``quantize()`` does; every later block is replayed with
block 0's cached inputs, as AutoRound feeds it. The replay runs after the shared-cache-key fix (keys
verified by the shared_cache_keys detector are declared shared), so what is left are inputs AutoRound's
per-sample split or its special cases mishandle: the hard-coded ``alibi`` reshape, 0-d tensors, Python
lists of state, integer masks, and inputs that differ per block (per-layer masks or rotary tables).
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from scaffold.autoround_api import resolve_model_type
from scaffold.codegen.model_key import built_resolved_type
from scaffold.inspection.autoround_replay import BATCH_SIZE, BlockReplay, replay_on_tiny
from scaffold.inspection.context import InspectContext, ProbeUnavailable
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.inspection.probes import (
    calibration_samples,
    describe,
    forward_params,
    record_block_calls,
    run_forward,
    same_value,
    tensors_in,
)
from scaffold.modes.shared_cache_keys.detect import shared_keys

FIXES = {
    "alibi": "replay alibi per sample: register the block for prepare_special_model_block_inputs to rebuild "
    "alibi of shape (batch*heads, 1, seq) from the replayed batch, or declare 'alibi' a shared cache key "
    "and slice it per sample in a block wrapper",
    "zero_dim_tensor": "declare the 0-d input a shared cache key, or make it a Python int / a 1-d tensor",
    "python_list": "pass the state as tensors with a batch dimension, or declare the key shared and wrap "
    "the block so it receives the list unchanged",
    "int_mask": "convert the integer mask to bool before the blocks (or declare it shared if it is per model)",
    "sequence_first": "the blocks take sequence-first hidden states, but AutoRound's block_forward concatenates and "
    "splits along dim 0: hand AutoRound batch-first hidden states (and inputs) and move them back inside each block",
    "per_block_input": "AutoRound replays every block with the first block's cached inputs: register the block for "
    "prepare_special_model_block_inputs to rebuild the per-layer inputs (masks, rotary tables) from the layer index",
    "previous_block_output": "AutoRound replays each block alone, so an input the model loop takes from the previous "
    "block's output (e.g. keys/values shared across layers) is missing: carry that output element over from the "
    "previous block's replay to the block (matched per sample by its hidden-states input)",
    "not_cached": "AutoRound does not cache an input the block gets (a non-tensor object such as a KV-sharing "
    "dict): rebuild it per block from the model's forward, or pass it to the block in a wrapper",
    "shared_state": "the model's forward creates one mutable state object (e.g. a KV-sharing dict) per forward and "
    "hands it to every block, which writes entries into it that later blocks read; AutoRound caches none of it: "
    "give each replayed block a fresh one holding, per sample, the entries the earlier blocks wrote (carried over "
    "from each block's replay to the next, matched per sample by its hidden-states input)",
    "looped_block": "the forward calls the blocks of this stack several times (a looped, weight-shared stack), and "
    "AutoRound caches a block's inputs at every call, one entry per call, where its tuning expects one per sample: "
    "cache each block's first call of a forward only (the repeated calls run the block uncached)",
    "unknown": "compare the cached inputs in the evidence with the real ones and declare the broken key shared "
    "or rebuild it in prepare_special_model_block_inputs",
}


@dataclass
class Cause:
    tag: str
    inputs: list[str]
    detail: str
    carried: dict[str, int] = field(default_factory=dict)  # previous_block_output: key -> output element index


def _follows(block: str, previous: str) -> bool:
    """Whether ``block`` is the block right after ``previous`` in the same stack (``....3`` after ``....2``)."""
    stack, _, index = block.rpartition(".")
    before, _, other = previous.rpartition(".")
    return stack == before and index.isdigit() and other.isdigit() and int(index) == int(other) + 1


def _alibi_detail(real: torch.Tensor, cached: str) -> str:
    shape = list(real.shape)
    return (
        f"the real forward passes alibi {shape} = (batch*heads, 1, seq) per calibration forward; AutoRound's "
        f"post_process_cache_data (calibration/llm.py) reshapes it to (batch_size, -1, q, k) with the configured "
        f"batch_size={BATCH_SIZE} instead of the forward's own batch, so each sample's heads are spread over "
        f"{BATCH_SIZE} cache entries ({cached}); block_forward (compressors/utils.py) then does "
        "alibi.reshape(-1, q, k) on the replayed batch and hands the block too few (batch*heads) rows"
    )


def batch_layout(model: torch.nn.Module, block: str, inputs: dict[str, Any]) -> dict[str, int | None]:
    """{input of ``block``: the dimension AutoRound must split it along} in real forwards of ``inputs`` (a batch of
    two) and of its first sample: the dimension that grows with the batch; for a tensor that does not grow, the
    hidden states' batch dimension where it has size 1 there (it broadcasts), else None. The hidden states come first.
    """
    calls = []
    for batch in (inputs, {k: v[:1] if isinstance(v, torch.Tensor) and v.dim() else v for k, v in inputs.items()}):
        with record_block_calls(model, [block]) as recorder, torch.no_grad():
            run_forward(model, batch)
        calls.append(recorder.first(block))
    if calls[0] is None or calls[1] is None or calls[0].hidden_name is None:
        return {}

    def grows(two: Any, one: Any) -> int | None:
        if not isinstance(two, torch.Tensor) or not isinstance(one, torch.Tensor) or two.dim() != one.dim():
            return None
        found = [d for d in range(two.dim()) if two.shape[d] != one.shape[d]]
        return found[0] if len(found) == 1 and two.shape[found[0]] == 2 * one.shape[found[0]] else None

    hidden = calls[0].hidden_name
    dims = {hidden: grows(calls[0].hidden, calls[1].hidden)}
    for key, value in calls[0].inputs.items():
        if key == hidden or not isinstance(value, torch.Tensor) or value.dim() == 0:
            continue
        dim = grows(value, calls[1].inputs.get(key))
        if dim is None and dims[hidden] is not None and value.dim() > dims[hidden] and value.shape[dims[hidden]] == 1:
            dim = dims[hidden]
        dims[key] = dim
    return dims


def mishandled_inputs(real_inputs: dict[str, Any], shared: tuple[str, ...]) -> dict[str, str]:
    """{input: kind} of every input AutoRound's per-sample caching cannot carry: 0-d tensors (``torch.split``
    needs a dimension), Python numbers (not cached at all), lists/tuples of tensors (stored whole, concatenated
    on replay) and integer masks."""
    found: dict[str, str] = {}
    for key, value in real_inputs.items():
        if key in shared:
            continue
        if isinstance(value, torch.Tensor) and value.dim() == 0:
            found[key] = "zero_dim_tensor"
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[key] = "python_scalar"
        elif isinstance(value, (list, tuple)) and tensors_in(value):
            found[key] = "python_list"
        elif "mask" in key and isinstance(value, torch.Tensor) and not value.is_floating_point():
            if value.dtype != torch.bool:
                found[key] = "int_mask"
    return found


def classify(
    real_inputs: dict[str, Any],
    cached: dict[str, str],
    shared: tuple[str, ...],
    layout: dict[str, int | None] | None = None,
) -> Cause:
    """Name the input AutoRound mishandles, from the block's real inputs (first sample) and what it cached.

    ``layout`` (:func:`batch_layout`) names the batch dimension of each input, the hidden states first.
    """
    if isinstance(real_inputs.get("alibi"), torch.Tensor):  # block_forward special-cases this very name
        return Cause("alibi", ["alibi"], _alibi_detail(real_inputs["alibi"], cached.get("alibi", "?")))
    hidden, hidden_dim = next(iter((layout or {}).items()), (None, None))
    if hidden_dim:
        moved = [hidden, *(k for k, d in layout.items() if k != hidden and d is not None and d != 0)]
        return Cause(
            "sequence_first",
            moved,
            f"{hidden} has its batch along dim {hidden_dim}; AutoRound's calibration splits along it, but "
            "block_forward (BlockForwardRunner) concatenates samples and splits outputs along dim 0",
        )
    own = {k: v for k, v in real_inputs.items() if k not in shared}
    zero_dim = [k for k, v in own.items() if isinstance(v, torch.Tensor) and v.dim() == 0]
    if zero_dim:
        return Cause(
            "zero_dim_tensor", zero_dim, "0-d tensors cannot be split per sample (torch.split needs a dimension)"
        )
    lists = [k for k, v in own.items() if isinstance(v, (list, tuple)) and tensors_in(v)]
    if lists:
        return Cause(
            "python_list",
            lists,
            "AutoRound stores a list/tuple whole per forward and torch.cat's the per-sample entries on replay",
        )
    int_masks = [
        k
        for k, v in own.items()
        if "mask" in k and isinstance(v, torch.Tensor) and not v.is_floating_point() and v.dtype != torch.bool
    ]
    if int_masks:
        return Cause("int_mask", int_masks, "integer masks used as boolean change meaning once batched or cast")
    first = next(iter(real_inputs), None)  # the hidden states, which AutoRound keeps apart from the cache
    not_cached = [k for k, v in own.items() if k != first and v is not None and k not in cached]
    if not_cached:
        kinds = ", ".join(f"{k} ({type(own[k]).__name__})" for k in not_cached)
        return Cause("not_cached", not_cached, f"the block gets {kinds} in the real forward, AutoRound caches none")
    return Cause("unknown", [], "no input of a known troublesome kind; see cached vs inputs")


def output_elements(output: Any) -> list[Any]:
    """A block output as a list of its elements (a tuple's items, a ModelOutput's values, or the one tensor)."""
    if isinstance(output, dict):
        return list(output.values())
    if isinstance(output, (tuple, list)):
        return list(output)
    return [output]


def carried_outputs(keys: list[str], inputs: dict[str, Any], previous_output: Any) -> dict[str, int]:
    """{key: index of the previous block's output element the real forward passes as ``key``} (all keys or {})."""
    elements = output_elements(previous_output)
    found: dict[str, int] = {}
    for key in keys:
        index = next((i for i, e in enumerate(elements) if i and tensors_in(e) and same_value(inputs[key], e)), None)
        if index is None:
            return {}
        found[key] = index
    return found


def _state_entries_batched(state: MutableMapping, batch: int) -> bool:
    """Whether every entry of ``state`` is a tensor or tuple of tensors with the batch along dim 0 (``batch`` > 1)."""
    tensors = [tensors_in(value if isinstance(value, (tuple, list)) else [value]) for value in state.values()]
    found = [t for group in tensors for t in group]
    return batch > 1 and all(tensors) and bool(found) and all(t.dim() and t.shape[0] == batch for t in found)


def shared_state_facts(model: torch.nn.Module, blocks: list[str], inputs: dict[str, Any], key: str) -> dict | None:
    """What a real forward of ``inputs`` does with the block input ``key``, when it is shared per-forward state.

    None unless every block of the stack gets the same mutable mapping (one object per forward, as a KV-sharing
    dict) and some block writes entries into it. ``type``: its class as ``module.qualname`` (the fix builds a fresh
    one per replayed block); ``writers``: {block: the entry keys it adds}; ``batch_first``: every entry holds
    tensors with the batch along dim 0 (so it can be split per sample).
    """
    seen: dict[str, tuple[Any, set, int]] = {}
    written: dict[str, list[str]] = {}

    def before(path: str, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        named = {**dict(zip(forward_params(module), args, strict=False)), **kwargs}
        state, hidden = named.get(key), args[0] if args else next(iter(named.values()), None)
        if path not in seen and isinstance(state, MutableMapping):
            batch = int(hidden.shape[0]) if isinstance(hidden, torch.Tensor) and hidden.dim() else 0
            seen[path] = (state, set(state), batch)

    def after(path: str, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if path in seen and path not in written:
            state, keys, _ = seen[path]
            written[path] = [str(k) for k in state if k not in keys]

    handles = []
    for path in blocks:
        module = model.get_submodule(path)
        handles.append(module.register_forward_pre_hook(partial(before, path), with_kwargs=True))
        handles.append(module.register_forward_hook(partial(after, path), with_kwargs=True))
    try:
        run_forward(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    states = [seen[path][0] for path in blocks if path in seen]
    if len(states) != len(blocks) or any(state is not states[0] for state in states):
        return None
    writers = {path: keys for path, keys in written.items() if keys}
    if not writers:
        return None
    kind = type(states[0])
    return {
        "key": key,
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "writers": writers,
        "batch_first": _state_entries_batched(states[0], seen[blocks[0]][2]),
    }


def shared_state_cause(ctx: InspectContext, stack: str, cause: Cause) -> tuple[Cause, dict | None]:
    """A ``not_cached`` cause whose one input is per-forward state shared by the blocks -> ``shared_state``."""
    if cause.tag != "not_cached" or len(cause.inputs) != 1:
        return cause, None
    model = ctx.tiny().model
    blocks = [f"{stack}.{name}" for name, _ in model.get_submodule(stack).named_children()]
    try:
        facts = shared_state_facts(model, blocks, ctx.tiny().inputs, cause.inputs[0])
    except Exception:  # noqa: BLE001 - a forward the probe cannot rerun: the not_cached cause stands
        return cause, None
    if facts is None:
        return cause, None
    writers = "; ".join(f"{block} adds {', '.join(keys)}" for block, keys in facts["writers"].items())
    detail = (
        f"every block of {stack} gets the same {facts['type'].rsplit('.', 1)[-1]} as {facts['key']}, created once "
        f"per forward, and blocks write into it ({writers}); AutoRound caches none of it, so a replayed block gets "
        "None"
    )
    return Cause("shared_state", list(cause.inputs), detail), facts


def per_block_cause(replay: BlockReplay, first: BlockReplay) -> Cause:
    """Inputs the real forward gives ``replay.block`` that differ from what the first block got.

    When every such input is an element of the previous block's output (``replay.inputs_from`` is the block
    just before), the cause is ``previous_block_output`` and ``Cause.carried`` says which element.
    """
    mine = replay.real_call.inputs if replay.real_call else {}
    theirs = first.real_call.inputs if first.real_call else {}
    hidden = replay.real_call.hidden_name if replay.real_call else None
    differ = [k for k in mine if k != hidden and k in theirs and not same_value(mine[k], theirs[k])]
    differ += [k for k in mine if k != hidden and k not in theirs]
    carried = carried_outputs(differ, mine, first.real_call.output) if differ and first.real_call else {}
    if carried and _follows(replay.block, first.block):
        where = ", ".join(f"{key} = output[{index}]" for key, index in carried.items())
        return Cause(
            "previous_block_output",
            differ,
            f"the model loop hands {replay.block} an element of {first.block}'s output ({where}); AutoRound "
            f"replays each block alone with the inputs cached at {first.block}, where it was not set",
            carried,
        )
    return Cause(
        "per_block_input",
        differ,
        f"{replay.block} gets inputs of its own in the real forward, but AutoRound replays it with the cached "
        f"inputs of {first.block} (input_others are cached for the first block of a stack only)",
    )


def _scalar(value: Any) -> float | int | bool | None:
    """A 0-d tensor or Python number as a plain Python scalar (None for anything else)."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    if isinstance(value, (bool, int, float)):
        return value
    return None


def per_block_values(ctx: InspectContext, stack: str, keys: list[str]) -> dict[str, list]:
    """The scalar value each block of ``stack`` gets for ``keys`` at its first call in one real forward of the tiny
    model, read when the block is called (a model loop may count the layer index in one tensor it updates in place).

    AutoRound replays every block with the inputs cached at the first one; these values say whether an input
    is the same for every block (a constant) or differs per block (e.g. a layer index, ``[0, 1, 2]``).
    Keys whose value is not a scalar in some block are left out.
    """
    if not keys:
        return {}
    tiny = ctx.tiny()
    blocks = [f"{stack}.{name}" for name, _ in tiny.model.get_submodule(stack).named_children()]
    with record_block_calls(tiny.model, blocks, copy_inputs=True) as recorder, torch.no_grad():
        run_forward(tiny.model, tiny.inputs)
    values: dict[str, list] = {}
    for key in keys:
        found = [_scalar(recorder.calls[b][0].inputs.get(key)) if recorder.calls.get(b) else None for b in blocks]
        if found and all(value is not None for value in found):
            values[key] = found
    return values


def calls_per_forward(ctx: InspectContext, stack: str) -> int:
    """How many times one real forward of the tiny model calls a block of ``stack`` (most over its blocks): more
    than 1 for a looped stack (a recurrent core run several times, weights shared). Memoized per stack."""
    memo = f"calls_per_forward:{stack}"
    if memo not in ctx.probe_results:
        model = ctx.tiny().model
        blocks = [f"{stack}.{name}" for name, _ in model.get_submodule(stack).named_children()]
        with record_block_calls(model, blocks) as recorder, torch.no_grad():
            run_forward(model, ctx.tiny().inputs)
        ctx.probe_results[memo] = max((len(recorder.calls.get(block, [])) for block in blocks), default=0)
    return ctx.probe_results[memo]


def _differing_keys(model: torch.nn.Module, blocks: list[str], inputs: dict[str, Any]) -> tuple[list[str], list]:
    """Inputs some block gets with a value unlike the first block's in one real forward of ``inputs`` (hidden
    states excluded), and each block's first call."""
    with record_block_calls(model, blocks, outputs=True) as recorder, torch.no_grad():
        run_forward(model, inputs)
    calls = [recorder.first(block) for block in blocks]
    first = calls[0]
    keys: list[str] = []
    for call in calls[1:]:
        if call is None or first is None:
            continue
        for key, value in call.inputs.items():
            differs = key not in first.inputs or not same_value(value, first.inputs[key])
            if key != call.hidden_name and differs and key not in keys:
                keys.append(key)
    return keys, calls


def rebuild_facts(ctx: InspectContext, stack: str) -> dict[str, Any]:
    """What a fix that re-derives each block's inputs from the model's own forward needs to know.

    ``keys``: inputs some block of ``stack`` gets with a value unlike the first block's in a real forward of the
    tiny batch or of a calibration sample as the replay fed it (its padding mask has a masked position, where an
    all-ones mask can reach every block as None alike: a hybrid stack's linear-attention layers then get the 2-D
    padding mask and its attention layers a 4-D causal mask); hidden states excluded. ``owner``: the module
    holding the stack, whose forward builds them; ``owner_params``: its forward parameters (``inputs_embeds`` is
    what lets it run from hidden states alone); ``output_arity``: 0 when a block returns a tensor, else the length
    of the tuple it returns.
    """
    model = ctx.tiny().model
    blocks = [f"{stack}.{name}" for name, _ in model.get_submodule(stack).named_children()]
    keys, calls = _differing_keys(model, blocks, ctx.tiny().inputs)
    if isinstance(ctx.tiny().inputs.get("attention_mask"), torch.Tensor):
        padded = calibration_samples(ctx.tiny().inputs, count=1)[0]
        with contextlib.suppress(Exception):  # a forward that cannot take the padded mask: the tiny batch decides
            keys += [key for key in _differing_keys(model, blocks, padded)[0] if key not in keys]
    first = calls[0]
    output = first.output if first else None
    owner = stack.rpartition(".")[0]
    return {
        "owner": owner,
        "owner_params": forward_params(model.get_submodule(owner)),
        "keys": keys,
        "output_arity": len(output) if isinstance(output, tuple) else 0,
        "blocks_reached": sum(call is not None for call in calls),
        "blocks": len(blocks),
    }


def _finding(
    replay: BlockReplay,
    stack: str,
    block_class: str,
    shared: tuple[str, ...],
    first: BlockReplay | None,
    ctx: InspectContext | None = None,
) -> Finding:
    real_inputs = replay.real_call.inputs if replay.real_call else {}
    layout: dict[str, int | None] = {}
    if ctx is not None and first is None:
        layout = batch_layout(ctx.tiny().model, replay.block, ctx.tiny().inputs)
    cause = per_block_cause(replay, first) if first else classify(real_inputs, replay.cached, shared, layout)
    state = None
    if ctx is not None:
        cause, state = shared_state_cause(ctx, stack, cause)
    calls = calls_per_forward(ctx, stack) if ctx is not None else 1
    if calls > 1 and cause.tag == "unknown":
        detail = f"one forward calls each block of {stack} up to {calls} times; AutoRound caches every call"
        cause = Cause("looped_block", [], detail)
    mishandled = mishandled_inputs(real_inputs, shared)
    evidence: dict[str, Any] = {
        "stack": stack,
        "block": replay.block,
        "stage": replay.stage,
        "inputs": {k: describe(v) for k, v in real_inputs.items()},
        "cached": replay.cached,
        "cause": cause.tag,
        "cause_inputs": cause.inputs,
        "cause_detail": cause.detail,
        "shared_keys": list(shared),
        "batch_size": BATCH_SIZE,
        "replayed_with_inputs_of": replay.inputs_from,
    }
    if cause.carried:
        evidence["carried_from_previous"] = cause.carried
    if state:
        evidence["shared_state"] = state
    if calls > 1:  # a looped stack: AutoRound must cache each block's first call of a forward only
        evidence["calls_per_forward"] = calls
    if layout:
        evidence["batch_dims"] = layout
    if mishandled:
        evidence["mishandled"] = mishandled
    scalar_keys = [k for k in dict.fromkeys([*cause.inputs, *mishandled]) if _scalar(real_inputs.get(k)) is not None]
    if ctx is not None and scalar_keys:
        evidence["per_block_values"] = per_block_values(ctx, stack, scalar_keys)
    if ctx is not None and cause.tag in ("per_block_input", "shared_state"):
        evidence["rebuild"] = rebuild_facts(ctx, stack)
    built = built_resolved_type(ctx) if ctx is not None else ""
    if built and built != (resolve_model_type(ctx.config) or ctx.target.model_type):
        evidence["model_type"] = built  # the fix's _handle_special_model branch must fire for the built model too
    if replay.exception:
        evidence["exception"] = replay.exception
    if replay.max_abs_err is not None:
        evidence["max_abs_err"] = replay.max_abs_err
    what = f"crashes ({replay.exception})" if replay.exception else f"differs (max abs err {replay.max_abs_err:.3g})"
    return Finding(
        mode=Mode.BLOCK_REPLAY,
        severity=Severity.FAILS,
        summary=f"AutoRound's replay of {replay.block} {what}; cause: {cause.tag}",
        fix=FIXES[cause.tag],
        modules=[replay.block],
        classes=[block_class],
        evidence=evidence,
        probe="tiny",
    )


def detect(ctx: InspectContext) -> list[Finding]:
    try:
        keys = shared_keys(ctx).keys
        run = replay_on_tiny(ctx, keys)
        model = ctx.tiny().model
    except ProbeUnavailable:
        return []
    if run.setup_error:
        ctx.notes.append(f"block_replay: AutoRound could not be set up on the tiny model: {run.setup_error}")
        return []
    findings = []
    for name, replay in run.blocks.items():
        if replay.ok:
            continue
        if replay.real_call is None:  # never run by the forward: forward_coverage reports it
            ctx.notes.append(f"block_replay: {name} is not run by the forward, not replayed")
            continue
        stack = name.rsplit(".", 1)[0]
        first = run.blocks.get(replay.inputs_from) if replay.inputs_from else None
        block_class = type(model.get_submodule(name)).__name__
        findings.append(_finding(replay, stack, block_class, run.shared_keys, first, ctx))
    return findings
