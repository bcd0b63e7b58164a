"""Which candidate block stacks the forward really runs as a chain (block i's output feeds block i+1).

Probed on the tiny instance with forward hooks. A custom container (not a ModuleList, Sequential or
ModuleDict; any child names) is a block stack only when chained; a list whose blocks the forward runs but
not as a chain (each on the same input, say) is a decoy, and so is one the forward never runs while a
chained custom container beside it carries the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scaffold.inspection.hooks import capture_calls, first_tensor
from scaffold.inspection.stacks import BlockStack, block_stacks


@dataclass
class Call:
    inputs: list[torch.Tensor]  # the tensors passed positionally or by keyword (first level)
    first_out: torch.Tensor | None


def _tensors(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    found = [first_tensor(value) for value in (*args, *kwargs.values())]
    return [tensor for tensor in found if tensor is not None]


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a is b or bool(torch.equal(a, b))


def probe_calls(model: nn.Module, run: Callable[[], Any], stacks: list[BlockStack]) -> dict[str, list[Call]]:
    """First call of each block of ``stacks`` while ``run()`` runs ``model`` once: {block path: [Call]}."""
    paths = [path for stack in stacks for path in stack.blocks]
    with capture_calls(model, paths) as log, torch.no_grad():
        run()
    returned = {path: log.first(path, returned=True) for path in log.calls}
    return {
        path: [Call(_tensors(call.args, call.kwargs), first_tensor(call.output))]
        for path, call in returned.items()
        if call is not None
    }


def chain_state(stack: BlockStack, calls: dict[str, list[Call]]) -> str:
    """``chained`` (the first two blocks run, block 0's output is block 1's input), ``unchained`` or ``not run``.

    A one-block stack (a one-layer prelude beside a looped core) is a chain of one: ``chained`` once its block runs.
    """
    if len(stack.blocks) == 1:
        return "chained" if stack.blocks[0] in calls else "not run"
    first, second = stack.blocks[0], stack.blocks[1]
    if first not in calls and second not in calls:
        return "not run"
    if first in calls and second in calls:
        out = calls[first][0].first_out
        if any(_same(out, tensor) for tensor in calls[second][0].inputs):
            return "chained"
    return "unchained"


def confirmed_stacks(model: nn.Module, run: Callable[[], Any]) -> tuple[list[BlockStack], dict[str, str]]:
    """Block stacks of ``model`` after the chain probe (``run()`` runs one forward), and each candidate's state."""
    candidates = block_stacks(model, with_custom=True)
    try:
        calls = probe_calls(model, run, candidates)
    except Exception:  # noqa: BLE001 - a forward that fails here leaves the structural answer
        return [s for s in candidates if not s.structural_only], {}
    states = {s.path: chain_state(s, calls) for s in candidates}
    custom = any(s.structural_only and states[s.path] == "chained" for s in candidates)
    kept = []
    for stack in candidates:
        state = states[stack.path]
        if stack.structural_only and state != "chained":
            continue
        if state == "unchained" and stack.container != "custom":
            continue
        if state == "not run" and custom:
            continue
        kept.append(stack)
    return kept, states
