"""Replay first blocks the way AutoRound does, with AutoRound's own code, and compare with the real forward.

A real ``AutoRound(...)`` object is built on a copy of the tiny model; its calibrator caches the first block
inputs of each stack (``cache_data``), ``_update_inputs`` and ``_preprocess_block_inputs`` split them as in
``_quantize_blocks``, and its ``BlockForwardRunner`` (``block_forward``) replays them. Nothing is reimplemented,
so a crash or mismatch here is one AutoRound would hit at the start of ``quantize()``.

Calibration feeds one sample per forward with ``batch_size=2``: that is what AutoRound does with a dataset
given as a list of strings, and it exercises the per-sample split of every cached input.

The replay runs with AutoRound's ``amp=False`` (float32): the question is structural (does each replayed block get
the inputs the model gives it?), and in bf16 autocast, which AutoRound uses on CUDA and on bf16 CPUs, a correctly
fed block already differs by up to ~1e-2, as much as some wrong inputs do. So the verdict is the same on every
machine; ``scaffold.measure.precision`` reports what the host itself would tune in.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from scaffold.autoround_api import get_block_names, quiet_autoround
from scaffold.errors import first_line
from scaffold.inspection.hooks import first_tensor
from scaffold.inspection.probes import (
    BlockCall,
    calibration_samples,
    describe,
    record_block_calls,
    run_forward,
    tiny_speed,
)
from scaffold.measure.precision import STRUCTURAL_PRECISION

if TYPE_CHECKING:
    from scaffold.inspection.context import InspectContext

TOLERANCE = 1e-4  # float32, amp off: a correctly fed block reproduces the forward to ~1e-6
BATCH_SIZE = 2


@dataclass
class BlockReplay:
    """How AutoRound's replay of one block compared with the real forward."""

    block: str
    stage: str  # "ok", or where it failed: "cache" (input caching) | "replay" (block_forward) | "compare"
    exception: str | None = None
    max_abs_err: float | None = None
    cached: dict[str, str] = field(default_factory=dict)  # what AutoRound stored per input (after preprocessing)
    real_call: BlockCall | None = None  # the block's inputs and output in the real forward (first sample)
    inputs_from: str | None = None  # replayed with this (earlier) block's cached input_others, as AutoRound does

    @property
    def ok(self) -> bool:
        return self.stage == "ok"

    def outcome(self) -> str:
        if self.ok:
            return f"matches (max abs err {self.max_abs_err:.2e})"
        if self.exception:
            return f"{self.stage}: {self.exception}"
        return f"mismatch: max abs err {self.max_abs_err:.3g}"


@dataclass
class ReplayRun:
    shared_keys: tuple[str, ...]  # the shared cache keys AutoRound used
    blocks: dict[str, BlockReplay] = field(default_factory=dict)
    setup_error: str | None = None  # AutoRound(...) itself failed: nothing was replayed
    batch_size: int = BATCH_SIZE
    samples: int = 0
    precision: str = STRUCTURAL_PRECISION  # what the replay computed in, whatever the host's AutoRound default


@contextlib.contextmanager
def declared_shared_keys(model_class: str, keys: tuple[str, ...]) -> Iterator[None]:
    """Temporarily add ``keys`` to ``SPECIAL_SHARED_CACHE_KEYS[model_class]``, as a generated patch would."""
    from auto_round.special_model_handler import SPECIAL_SHARED_CACHE_KEYS

    if not keys:
        yield
        return
    missing = object()
    old = SPECIAL_SHARED_CACHE_KEYS.get(model_class, missing)
    existing = tuple(old) if old is not missing else ()
    SPECIAL_SHARED_CACHE_KEYS[model_class] = existing + tuple(k for k in keys if k not in existing)
    try:
        yield
    finally:
        if old is missing:
            SPECIAL_SHARED_CACHE_KEYS.pop(model_class, None)
        else:
            SPECIAL_SHARED_CACHE_KEYS[model_class] = old


def _seed_each_forward(module: nn.Module, args: tuple) -> None:
    torch.manual_seed(0)


@contextlib.contextmanager
def same_draws(model: nn.Module) -> Iterator[None]:
    """Every forward of ``model`` (and of a copy made inside) starts from the same random state, restored after.

    A forward that draws random numbers (a recurrent-depth model's random initial state) then draws the same in
    AutoRound's calibration forward of a sample as in the reference forward of that sample (both run one sample
    per forward), so the replay compares like with like; a forward that draws nothing is unaffected.
    """
    with torch.random.fork_rng(devices=[]):
        handle = model.register_forward_pre_hook(_seed_each_forward)
        try:
            yield
        finally:
            handle.remove()


def reference_calls(model: nn.Module, block_names: list[str], samples: list[dict[str, Any]]) -> dict[str, list]:
    """Each block's calls (inputs and output) in the real forward, one forward per sample."""
    calls: dict[str, list[BlockCall]] = {name: [] for name in block_names}
    for sample in samples:
        with record_block_calls(model, block_names, outputs=True) as recorder:
            run_forward(model, sample)
        for name in block_names:
            found = recorder.calls.get(name)
            if found:
                calls[name].append(found[0])
    return calls


def _tokenizer(model: nn.Module) -> Any:
    from scaffold.tiny.inputs import text_vocab_size
    from scaffold.tiny.tokenizer import make_tokenizer

    return make_tokenizer(max(text_vocab_size(model.config), 8))


def _autoround(model: nn.Module, samples: list[dict[str, Any]]) -> Any:
    from auto_round import AutoRound

    from scaffold.measure.precision import apply_bf16_override
    from scaffold.tiny.fit import own_mask_samples

    apply_bf16_override()  # amp is off below either way; the override keeps AutoRound's other defaults as in a run
    seqlen = int(samples[0]["input_ids"].shape[-1])
    dataset = [{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()} for s in samples]
    dataset = own_mask_samples(model, dataset)  # a forward that builds its own mask gets none from AutoRound
    return AutoRound(
        model,
        tokenizer=_tokenizer(model),
        iters=1,  # calibration is only set up when tuning; quantize() is never called
        nsamples=len(samples),
        seqlen=seqlen,
        batch_size=BATCH_SIZE,
        dataset=dataset,
        device_map="cpu",
        enable_torch_compile=False,
        amp=False,  # structural replay in float32 on every machine (see the module docstring)
    )


def as_layout(tensor: torch.Tensor, like: torch.Size) -> torch.Tensor:
    """``tensor`` with one dimension moved so its shape is ``like`` (an adaptation may hand AutoRound blocks
    batch-first hidden states where the model's own forward passes them sequence-first); unchanged otherwise."""
    if tensor.shape == like:
        return tensor
    for source in range(tensor.dim()):
        for target in range(tensor.dim()):
            if source != target and tensor.movedim(source, target).shape == like:
                return tensor.movedim(source, target)
    return tensor


def _compare(outputs: list[torch.Tensor], references: list[torch.Tensor], batch_dim: int) -> tuple[str, float | None]:
    got = torch.cat([o.detach() for o in outputs], dim=batch_dim)
    if outputs and references and outputs[0].shape != references[0].shape:
        references = [as_layout(r, outputs[0].shape) for r in references]
    expected = torch.cat(references, dim=batch_dim)
    if got.shape != expected.shape:
        return f"replayed output has shape {list(got.shape)}, the real forward {list(expected.shape)}", None
    return "", float((got.float() - expected.float()).abs().max())


def _run_and_compare(
    ar: Any, result: BlockReplay, input_ids: Any, input_others: dict, references: list[BlockCall]
) -> BlockReplay:
    from auto_round.modeling.fused_moe.replace_modules import materialize_model_

    runner = ar.alg_composer.block_forward
    try:
        block = ar.model_context.model.get_submodule(result.block)
        materialize_model_(block)  # as _quantize_blocks does before tuning (replaced MoE weights start on meta)
        with torch.no_grad():
            outputs = runner(block, input_ids, input_others)
    except Exception as exc:  # noqa: BLE001 - the crash is the finding
        result.exception = first_line(exc)
        return result
    real = [first_tensor(call.output, leading=True) for call in references]
    if not real or any(t is None for t in real):
        result.stage, result.exception = "compare", "the real forward gave no tensor output for this block"
        return result
    shape_error, err = _compare(outputs, real, getattr(runner, "batch_dim", 0) or 0)
    result.max_abs_err = err
    if shape_error:
        result.stage, result.exception = "compare", shape_error
    elif err is not None and err <= TOLERANCE:
        result.stage = "ok"
    else:
        result.stage = "compare"
    return result


def _replay_group(ar: Any, group: list[str], cached: dict[str, Any], references: dict[str, list]) -> list[BlockReplay]:
    """Replay the group's first block from its cache, then every later block with the first block's
    ``input_others`` and its own real hidden states, as ``_quantize_blocks`` feeds every later block (a tiny
    instance has a few blocks per stack, enough to hold each kind of layer of a hybrid stack)."""
    from auto_round.calibration.utils import _update_inputs

    first = BlockReplay(block=group[0], stage="replay", real_call=_first(references[group[0]]))
    try:
        inputs, _ = _update_inputs(dict(cached), None)
        input_ids, input_others = ar._preprocess_block_inputs(inputs)
    except Exception as exc:  # noqa: BLE001
        first.exception = first_line(exc)
        return [first]
    first.cached = {key: describe(value) for key, value in input_others.items() if key != "positional_inputs"}
    done = [_run_and_compare(ar, first, input_ids, input_others, references[group[0]])]
    if not first.ok:
        return done
    for name in group[1:]:
        calls = references[name]
        if not calls or len(calls) != len(references[group[0]]) or any(c.hidden is None for c in calls):
            continue
        later = BlockReplay(block=name, stage="replay", real_call=_first(calls))
        later.cached, later.inputs_from = first.cached, group[0]
        like = input_ids[0].shape if isinstance(input_ids, list) and input_ids else None
        hidden = [as_layout(call.hidden, like) if like is not None else call.hidden for call in calls]
        done.append(_run_and_compare(ar, later, hidden, input_others, calls))
    return done


def _first(calls: list[BlockCall]) -> BlockCall | None:
    return calls[0] if calls else None


def replay_first_blocks(
    model: nn.Module,
    groups: list[list[str]],
    samples: list[dict[str, Any]],
    extra_shared_keys: tuple[str, ...] = (),
) -> ReplayRun:
    """Cache and replay block groups (AutoRound's ``get_block_names``) with AutoRound on a copy of ``model``.

    The first block of each group is cached and replayed as in ``quantize()``; every later one is replayed with
    the first one's cached ``input_others``, which is what AutoRound gives every later block of the group.
    """
    from auto_round.compressors.utils import get_shared_keys

    model_class = type(model).__name__
    run = ReplayRun(shared_keys=(), samples=len(samples))
    first_names = [group[0] for group in groups]
    ar = None
    with declared_shared_keys(model_class, extra_shared_keys), quiet_autoround(), tiny_speed(), same_draws(model):
        run.shared_keys = tuple(get_shared_keys(model))
        try:
            references = reference_calls(model, [name for group in groups for name in group], samples)
        except Exception as exc:  # noqa: BLE001 - without a reference there is nothing to compare
            run.setup_error = f"the real forward on one-sample batches failed: {first_line(exc)}"
            return run
        try:
            ar = _autoround(copy.deepcopy(model), samples)
            if getattr(ar.model_context, "is_mllm", False):
                run.setup_error = "AutoRound treats the model as multimodal (it wants a processor and image data)"
                return run
            last = first_names[-1] if len(first_names) > 1 else None  # as the orchestrator's quantize()
            cache = ar.cache_data(list(first_names), len(samples), [], last_cache_name=last)
        except Exception as exc:  # noqa: BLE001
            if ar is None:
                run.setup_error = first_line(exc)
            else:
                for name in first_names:
                    run.blocks[name] = BlockReplay(
                        name, "cache", exception=first_line(exc), real_call=_first(references[name])
                    )
            return run
        for group in groups:
            if group[0] not in cache:
                never = "no inputs cached: the forward never ran it"
                run.blocks[group[0]] = BlockReplay(
                    group[0], "cache", exception=never, real_call=_first(references[group[0]])
                )
                continue
            for replay in _replay_group(ar, group, cache[group[0]], references):
                run.blocks[replay.block] = replay
    return run


def replay_on_tiny(ctx: InspectContext, extra_shared_keys: tuple[str, ...] = ()) -> ReplayRun:
    """Replay the blocks of every stack AutoRound finds in ``ctx.tiny()`` (memoized per key set)."""
    keys = tuple(sorted(set(extra_shared_keys)))
    memo = f"autoround_replay:{','.join(keys)}"
    if memo not in ctx.probe_results:
        tiny = ctx.tiny()
        groups = replay_groups(tiny.model, ctx.notes)
        if groups:
            run = replay_first_blocks(tiny.model, groups, calibration_samples(tiny.inputs), keys)
        else:
            run = ReplayRun(shared_keys=keys, setup_error="AutoRound's get_block_names finds no blocks to replay")
        ctx.probe_results[memo] = run
    return ctx.probe_results[memo]


def replay_groups(model: nn.Module, notes: list[str]) -> list[list[str]]:
    """The block groups AutoRound will replay once adapted.

    AutoRound's own ``get_block_names`` when it finds the decoder stacks; when it also finds wrong ones (a decoy
    ``ModuleList``) or misses one, the block_detection fix makes it use the stacks found in the module tree,
    so those are the ones whose replay matters.
    """
    from scaffold.inspection.stacks import block_stacks
    from scaffold.modes.block_detection.detect import foreign_blocks

    groups = [list(group) for group in get_block_names(model) if group]
    stacks = block_stacks(model)
    intended = [stack.blocks for stack in stacks if stack.modality == "text" and stack.blocks]
    # layers of another signature mixed into a stack (MTP layers) are left out by the block_detection fix
    foreign = [{entry["block"] for entry in foreign_blocks(model, blocks)} for blocks in intended]
    intended = [[b for b in blocks if b not in left_out] for blocks, left_out in zip(intended, foreign, strict=True)]
    as_found = {tuple(group) for group in groups}
    missed = any(tuple(blocks) not in as_found for blocks in intended)
    decoys = as_found - {tuple(stack.blocks) for stack in stacks}  # e.g. a ModuleList of rotary embeddings
    if intended and (missed or decoys):
        notes.append("block_replay: replaying the stacks found in the module tree, not AutoRound's own block list")
        return intended
    return groups


def replay_outcomes(model: nn.Module, inputs: dict[str, Any]) -> dict[str, str]:
    """{block: outcome} of AutoRound's replay of the blocks of each stack of a tiny ``model``.

    ``inputs`` is a forward-ready batch (``TinyModel.inputs``).

    For checking an adaptation: import its plugin (or a patched checkout) first, so ``AutoRound(...)`` applies
    it; every outcome then starts with ``matches`` when the replay reproduces the real forward.
    """
    groups = replay_groups(model, [])
    if not groups:
        return {}
    run = replay_first_blocks(model, groups, calibration_samples(inputs))
    if run.setup_error:
        return {"<setup>": run.setup_error}
    return {name: replay.outcome() for name, replay in run.blocks.items()}
