"""Block inputs computed once per forward that AutoRound's per-sample split breaks.

AutoRound caches block-0 inputs per calibration sample by splitting every tensor along the batch
dimension, except the keys in ``SHARED_CACHE_KEYS`` plus ``SPECIAL_SHARED_CACHE_KEYS[model class]``.
An input passed identically to every block whose first dimension is not the batch (a relative-position
bias ``[heads, q, k]``, a 0-d scale, a tuple of per-model tensors) is chopped into pieces and replayed
wrong. Each candidate is verified by replaying block 0 with AutoRound without and with the key declared
shared; only keys that turn a failing replay into a matching one are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaffold import autoround_api
from scaffold.errors import first_line
from scaffold.inspection.autoround_replay import ReplayRun, replay_on_tiny
from scaffold.inspection.context import InspectContext, ProbeUnavailable
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.inspection.probes import (
    CallRecorder,
    batch_size_of,
    describe,
    find_stacks,
    forward_params,
    record_block_calls,
    run_forward,
    same_value,
    tensors_in,
    tiny_speed,
)

PROBE = "shared_cache_keys"


@dataclass
class SharedInput:
    """An input every block of ``stack`` gets with the same value, which the batch split cannot take."""

    name: str
    stack: str
    value: Any
    reason: str

    def detail(self) -> dict[str, Any]:
        shapes = [list(t.shape) for t in tensors_in(self.value)]
        return {
            "type": describe(self.value),
            "shape": shapes[0] if len(shapes) == 1 else shapes,
            "stack": self.stack,
            "why": self.reason,
        }


@dataclass
class SharedKeysResult:
    candidates: list[SharedInput] = field(default_factory=list)
    keys: tuple[str, ...] = ()  # verified: declaring them shared fixes the replay
    without: ReplayRun | None = None
    with_keys: ReplayRun | None = None


def split_problem(value: Any, batch: int) -> str | None:
    """Why splitting ``value`` along dim 0 into ``batch`` samples would break it, or None if it splits fine."""
    if isinstance(value, (tuple, list)):
        if not tensors_in(value):
            return None
        inner = [split_problem(t, batch) for t in tensors_in(value)]
        why = next((w for w in inner if w), "it is cached whole per forward, not split per sample")
        return f"a {type(value).__name__} of tensors: {why}"
    if not hasattr(value, "dim"):
        return None
    if value.dim() == 0:
        return "0-d tensor: torch.split along the batch dimension fails"
    if value.shape[0] != batch:
        return f"dim 0 is {value.shape[0]}, not the batch size {batch}: it is per model, not per sample"
    return None


def _stack_candidates(recorder: CallRecorder, blocks: tuple[str, ...], first_param: str, batch: int, stack: str):
    calls = [recorder.first(b) for b in blocks]
    if len(calls) < 2 or any(c is None for c in calls):
        return []
    names = [n for n in calls[0].inputs if n != first_param and all(n in c.inputs for c in calls[1:])]
    found = []
    for name in names:
        value = calls[0].inputs[name]
        if value is None or isinstance(value, (bool, int, float, str)):
            continue
        if not all(same_value(value, c.inputs[name]) for c in calls[1:]):
            continue
        reason = split_problem(value, batch)
        if reason:
            found.append(SharedInput(name, stack, value, reason))
    return found


def find_candidates(ctx: InspectContext) -> list[SharedInput]:
    """Inputs passed identically to every block of a stack that the batch split would break."""
    tiny = ctx.tiny()
    stacks = [s for s in find_stacks(tiny.model) if s.modality == "text"]
    blocks = [b for s in stacks for b in s.blocks]
    with record_block_calls(tiny.model, blocks) as recorder, tiny_speed():
        run_forward(tiny.model, tiny.inputs)
    batch = batch_size_of(tiny.inputs)
    declared = set(autoround_api.default_shared_cache_keys())
    declared |= set(autoround_api.special_shared_cache_keys().get(type(tiny.model).__name__, ()))
    found: list[SharedInput] = []
    for stack in stacks:
        params = forward_params(tiny.model.get_submodule(stack.blocks[0]))
        first = params[0] if params else "hidden_states"
        candidates = _stack_candidates(recorder, stack.blocks, first, batch, stack.path)
        found += [c for c in candidates if c.name not in declared]
    return found


def shared_keys(ctx: InspectContext) -> SharedKeysResult:
    """Candidates and the verified keys (computed once per context; block_replay reuses it)."""
    if PROBE not in ctx.probe_results:
        try:
            candidates = find_candidates(ctx)
        except ProbeUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - a probe that cannot run is a note, not a crash
            ctx.notes.append(f"shared_cache_keys: the block-input probe failed: {first_line(exc)}")
            candidates = []
        result = SharedKeysResult(candidates=candidates)
        names = tuple(dict.fromkeys(c.name for c in result.candidates))
        if names:
            result.without = replay_on_tiny(ctx, ())
            failing = [name for name, r in result.without.blocks.items() if not r.ok and r.inputs_from is None]
            if failing:
                result.with_keys = replay_on_tiny(ctx, names)
                if all(result.with_keys.blocks[name].ok for name in failing if name in result.with_keys.blocks):
                    result.keys = names
        ctx.probe_results[PROBE] = result
    return ctx.probe_results[PROBE]


def detect(ctx: InspectContext) -> list[Finding]:
    try:
        result = shared_keys(ctx)
    except ProbeUnavailable:
        return []
    if result.without is not None and result.without.setup_error:
        ctx.notes.append("shared_cache_keys: AutoRound failed on the tiny model: " + result.without.setup_error)
    if not result.keys:
        return []
    model_class = type(ctx.tiny().model).__name__  # AutoRound keys the registry by the loaded class
    candidates = [c for c in result.candidates if c.name in result.keys]
    verified = {
        block: {"without": replay.outcome(), "with": result.with_keys.blocks[block].outcome()}
        for block, replay in result.without.blocks.items()
        if not replay.ok and replay.inputs_from is None
    }
    return [
        Finding(
            mode=Mode.SHARED_CACHE_KEYS,
            severity=Severity.FAILS,
            summary=f"{', '.join(result.keys)} {'is' if len(result.keys) == 1 else 'are'} computed once and passed "
            "to every block, but AutoRound splits it per sample and replays the blocks with broken inputs",
            fix=f'add SPECIAL_SHARED_CACHE_KEYS["{model_class}"] = {tuple(result.keys)!r} in special_model_handler.py',
            modules=sorted({c.stack for c in candidates}),
            classes=[model_class],
            evidence={
                "model_class": model_class,
                "keys": list(result.keys),
                "details": {c.name: c.detail() for c in candidates},
                "verified": verified,
            },
            probe="tiny",
        )
    ]
