"""Replay first blocks the way AutoRound does, with AutoRound's own code, and compare with the real forward.

A real ``AutoRound(...)`` object is built on a copy of the tiny model; its calibrator caches the first block
inputs of each stack (``cache_data``), ``_update_inputs`` and ``_preprocess_block_inputs`` split them as in
``_quantize_blocks``, and its ``BlockForwardRunner`` (``block_forward``) replays them. Nothing is reimplemented,
so a crash or mismatch here is one AutoRound would hit at the start of ``quantize()``.

Calibration feeds one sample per forward with ``batch_size=2``: that is what AutoRound does with a dataset
given as a list of strings, and it exercises the per-sample split of every cached input.
"""

from __future__ import annotations

import contextlib
import copy
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from scaffold.autoround_api import get_block_names, quiet_autoround
from scaffold.probes import (
    BlockCall,
    calibration_samples,
    describe,
    first_line,
    first_tensor,
    record_block_calls,
    run_forward,
)

if TYPE_CHECKING:
    from scaffold.context import InspectContext

TOLERANCE = 1e-4
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

    seqlen = int(samples[0]["input_ids"].shape[-1])
    dataset = [{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()} for s in samples]
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
    )


def _compare(outputs: list[torch.Tensor], references: list[torch.Tensor], batch_dim: int) -> tuple[str, float | None]:
    expected = torch.cat(references, dim=batch_dim)
    got = torch.cat([o.detach() for o in outputs], dim=batch_dim)
    if got.shape != expected.shape:
        return f"replayed output has shape {list(got.shape)}, the real forward {list(expected.shape)}", None
    return "", float((got.float() - expected.float()).abs().max())


def _replay_block(ar: Any, name: str, cached: dict[str, Any], references: list[BlockCall]) -> BlockReplay:
    from auto_round.calibration.utils import _update_inputs

    result = BlockReplay(block=name, stage="replay", real_call=references[0] if references else None)
    try:
        inputs, _ = _update_inputs(dict(cached), None)
        input_ids, input_others = ar._preprocess_block_inputs(inputs)
        result.cached = {key: describe(value) for key, value in input_others.items() if key != "positional_inputs"}
        runner = ar.alg_composer.block_forward
        block = ar.model_context.model.get_submodule(name)
        with torch.no_grad():
            outputs = runner(block, input_ids, input_others)
    except Exception as exc:  # noqa: BLE001 - the crash is the finding
        result.exception = first_line(exc)
        return result
    real = [first_tensor(call.output) for call in references]
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


def replay_first_blocks(
    model: nn.Module,
    block_names: list[str],
    samples: list[dict[str, Any]],
    extra_shared_keys: tuple[str, ...] = (),
) -> ReplayRun:
    """Cache and replay ``block_names`` (first blocks of stacks) with AutoRound on a copy of ``model``."""
    from auto_round.compressors.utils import get_shared_keys

    references = reference_calls(model, block_names, samples)
    model_class = type(model).__name__
    run = ReplayRun(shared_keys=(), samples=len(samples))
    ar = None
    with declared_shared_keys(model_class, extra_shared_keys), quiet_autoround():
        run.shared_keys = tuple(get_shared_keys(model))
        try:
            ar = _autoround(copy.deepcopy(model), samples)
            cache_names = list(block_names)
            last = cache_names[-1] if len(cache_names) > 1 else None  # as _quantize_via_rtn_blockwise / quantize
            cache = ar.cache_data(cache_names, len(samples), [], last_cache_name=last)
        except Exception as exc:  # noqa: BLE001
            if ar is None:
                run.setup_error = first_line(exc)
            else:
                for name in block_names:
                    real = references[name][0] if references[name] else None
                    run.blocks[name] = BlockReplay(name, "cache", exception=first_line(exc), real_call=real)
            return run
        try:
            for name in block_names:
                if name not in cache:
                    real = references[name][0] if references[name] else None
                    never = "no inputs cached: the forward never ran it"
                    run.blocks[name] = BlockReplay(name, "cache", exception=never, real_call=real)
                    continue
                run.blocks[name] = _replay_block(ar, name, cache[name], references[name])
        finally:
            del ar
            gc.collect()
    return run


def replay_on_tiny(ctx: InspectContext, extra_shared_keys: tuple[str, ...] = ()) -> ReplayRun:
    """Replay the first block of every stack AutoRound finds in ``ctx.tiny()`` (memoized per key set)."""
    keys = tuple(sorted(set(extra_shared_keys)))
    memo = f"autoround_replay:{','.join(keys)}"
    if memo not in ctx.probe_results:
        tiny = ctx.tiny()
        names = [group[0] for group in get_block_names(tiny.model) if group]
        if names:
            run = replay_first_blocks(tiny.model, names, calibration_samples(tiny.inputs), keys)
        else:
            run = ReplayRun(shared_keys=keys, setup_error="AutoRound's get_block_names finds no blocks to replay")
        ctx.probe_results[memo] = run
    return ctx.probe_results[memo]
