"""Block stacks by structure and by what the forward runs: mixed Sequentials, custom containers, decoys."""

from __future__ import annotations

import torch
from torch import nn

from scaffold.inspection.stack_chain import confirmed_stacks
from scaffold.inspection.stacks import block_stacks
from scaffold.modes.block_detection.generate import function_code


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(32)
        self.proj = nn.Linear(32, 32)

    def forward(self, hidden):
        return hidden + self.proj(self.norm(hidden))


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(64, 32)

    def forward(self, ids):
        return self.wte(ids)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(32)
        self.linear = nn.Linear(32, 64)

    def forward(self, hidden):
        return self.linear(self.norm(hidden))


class WholeSequential(nn.Module):
    """phi-1.5's layout: embedding, blocks and head in one Sequential."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(Embed(), Block(), Block(), Block(), Head())

    def forward(self, input_ids):
        return self.layers(input_ids)


class Pair(nn.Module):
    """A custom block container with non-numeric child names."""

    def __init__(self):
        super().__init__()
        self.first = Block()
        self.second = Block()


class WithDecoy(nn.Module):
    """Blocks in a custom container; beside it a ModuleList the forward runs, but not as a chain."""

    def __init__(self, run_decoy: bool = True):
        super().__init__()
        self.embed = Embed()
        self.blocks = Pair()
        self.helpers = nn.ModuleList([Block(), Block()])
        self.head = Head()
        self.run_decoy = run_decoy

    def forward(self, input_ids):
        hidden = self.embed(input_ids)
        hidden = self.blocks.second(self.blocks.first(hidden))
        if self.run_decoy:
            hidden = hidden + sum(helper(hidden) for helper in self.helpers) * 0.0
        return self.head(hidden)


def _run(model):
    ids = torch.randint(0, 64, (2, 5))
    return lambda: model(input_ids=ids)


def _generated_blocks(model, stacks) -> list[list[str]]:
    keep = {s.path: s.block_classes for s in stacks if s.partial or s.container == "custom"}
    namespace: dict = {}
    exec(function_code("toy", [s.path for s in stacks], None, keep), namespace)  # noqa: S102 - generated code
    return namespace["_get_toy_multimodal_block"](model)


def test_a_whole_network_sequential_gives_its_run_of_blocks():
    model = WholeSequential().eval()
    (stack,) = block_stacks(model)
    assert stack.path == "layers" and stack.partial
    assert stack.blocks == ["layers.1", "layers.2", "layers.3"] and stack.block_class == "Block"
    kept, states = confirmed_stacks(model, _run(model))
    assert [s.path for s in kept] == ["layers"] and states == {"layers": "chained"}
    assert _generated_blocks(model, kept) == [["layers.1", "layers.2", "layers.3"]]


def test_a_custom_container_is_a_stack_only_once_the_forward_chains_it():
    model = WithDecoy().eval()
    assert [s.path for s in block_stacks(model)] == ["helpers"]  # structure alone: only the decoy list
    kept, states = confirmed_stacks(model, _run(model))
    assert states == {"blocks": "chained", "helpers": "unchained"}
    assert [s.path for s in kept] == ["blocks"] and kept[0].container == "custom"
    assert _generated_blocks(model, kept) == [["blocks.first", "blocks.second"]]


def test_a_list_the_forward_never_runs_is_a_decoy_beside_a_chained_container():
    model = WithDecoy(run_decoy=False).eval()
    kept, states = confirmed_stacks(model, _run(model))
    assert states["helpers"] == "not run" and [s.path for s in kept] == ["blocks"]


def test_a_forward_that_fails_leaves_the_structural_stacks():
    model = WithDecoy().eval()

    def broken():
        raise RuntimeError("no forward")

    kept, states = confirmed_stacks(model, broken)
    assert [s.path for s in kept] == ["helpers"] and states == {}


class Looped(nn.Module):
    """A recurrent-depth layout (Huginn's): a ModuleDict holding a one-block prelude, a core list run twice per
    forward (weights shared across iterations) after an adapter, and a one-block coda; a 0-d step counter passed
    positionally to every block, updated in place by the loop."""

    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(64, 32),
                "prelude": nn.ModuleList([Counted()]),
                "adapter": nn.Linear(64, 32),
                "core": nn.ModuleList([Counted(), Counted()]),
                "coda": nn.ModuleList([Counted()]),
            }
        )
        self.head = nn.Linear(32, 64)

    def forward(self, input_ids):
        step = torch.tensor(-1)
        embeds = hidden = self.transformer.wte(input_ids)
        for block in self.transformer.prelude:
            step += 1
            hidden = block(hidden, step)
        for _ in range(2):
            hidden = self.transformer.adapter(torch.cat([hidden, embeds], dim=-1))
            for block in self.transformer.core:
                step += 1
                hidden = block(hidden, step)
        for block in self.transformer.coda:
            step += 1
            hidden = block(hidden, step)
        return self.head(hidden)


class Counted(Block):
    def forward(self, hidden, step):  # the step is a 0-d tensor: AutoRound cannot split it per sample
        assert step.dim() == 0
        self.step = int(step)
        return super().forward(hidden)


def test_a_dict_of_block_lists_gives_each_list_a_one_block_list_too():
    model = Looped().eval()
    stacks = block_stacks(model)
    # the ModuleDict is a container of lists, not a stack of two ModuleList "blocks"
    assert [(s.path, s.count) for s in stacks] == [
        ("transformer.prelude", 1),
        ("transformer.core", 2),
        ("transformer.coda", 1),
    ]
    assert {s.block_class for s in stacks} == {"Counted"}
    kept, states = confirmed_stacks(model, _run(model))
    assert [s.path for s in kept] == [s.path for s in stacks] and set(states.values()) == {"chained"}


def test_a_one_block_list_is_a_stack_only_beside_a_stack_of_its_class():
    model = nn.Module()
    model.layers = nn.ModuleList([Block(), Block()])
    model.extra = nn.ModuleList([Head()])  # one module of another class: not a block stack
    model.tail = nn.ModuleList([Block()])
    assert [(s.path, s.count) for s in block_stacks(model)] == [("layers", 2), ("tail", 1)]


def _looped_fix(model, evidence):
    from scaffold.inspection.findings import Finding, Mode, Severity
    from scaffold.modes.block_replay.generate import choose_fix, render_fix

    evidence = {"stack": "transformer.core", "calls_per_forward": 2, **evidence}
    fix = choose_fix(Finding(Mode.BLOCK_REPLAY, Severity.FAILS, "replay fails", "fix", evidence=evidence))
    assert (fix.rewrite, fix.first_call_only) == ("constant", True)
    namespace: dict = {}
    exec(render_fix(fix, "toy", "seen"), namespace)  # noqa: S102 - generated code
    return namespace["_patch_toy_block_replay"](model)


def _cached_calls(evidence):
    """One forward of the fixed toy with each core block's forward replaced, as AutoRound's caching does: what it
    caches per block, and whether the model computed what it computed before."""
    torch.manual_seed(0)
    model = Looped().eval()
    ids = torch.randint(0, 64, (1, 5))
    with torch.no_grad():
        expected = model(ids)
    _looped_fix(model, evidence)
    cached: dict[str, list] = {}
    for index, block in enumerate(model.transformer.core):

        def capture(hidden_states=None, *args, block=block, index=index, **kwargs):  # as forward_capture caches
            if hidden_states is not None:
                cached.setdefault(f"core.{index}", []).append((hidden_states, sorted(kwargs)))
            return block.orig_forward(hidden_states, *args, **kwargs)

        block.orig_forward, block.forward = block.forward, capture
    with torch.no_grad():
        same = torch.equal(model(ids), expected)
    return model, cached, same


def test_the_looped_stack_fix_has_autoround_cache_each_blocks_first_call_only():
    """AutoRound caches a block's inputs at every call; with the fix, one forward caches one entry per block (the
    first call, as the per-sample token mask assumes), the 0-d step kept out of it and rebuilt per block."""
    evidence = {"cause": "zero_dim_tensor", "cause_inputs": ["step"], "per_block_values": {"step": [1, 2]}}
    model, cached, same = _cached_calls({**evidence, "inputs": {"hidden": "Tensor[1, 5, 32] float32"}})
    assert same
    assert {name: len(calls) for name, calls in cached.items()} == {"core.0": 1, "core.1": 1}
    assert all(keys == [] for calls in cached.values() for _, keys in calls)  # the 0-d step is not cached
    model.transformer.core[1](cached["core.1"][0][0])  # replayed alone, the block rebuilds its step
    assert model.transformer.core[1].step == 2


def test_a_looped_stack_with_no_other_troublesome_input_is_cached_once_per_forward():
    model, cached, same = _cached_calls({"cause": "looped_block"})
    assert same and {name: len(calls) for name, calls in cached.items()} == {"core.0": 1, "core.1": 1}
    assert all(keys == ["step"] for calls in cached.values() for _, keys in calls)  # nothing else changed


def test_a_step_counted_down_per_block_is_rebuilt_per_block():
    """A coda numbering its blocks -1, -2, ... (Huginn's): each block replayed alone rebuilds its own step."""
    from scaffold.modes.block_replay.generate import _constant_or_index_fix, render_fix

    fix = _constant_or_index_fix("coda", "zero_dim_tensor", ["step"], {"step": [-1, -2]})
    assert (fix.rewrite, fix.index_keys, fix.index_steps) == ("constant", {"step": -1}, {"step": -1})
    assert _constant_or_index_fix("coda", "zero_dim_tensor", ["step"], {"step": [-1, -3]}).rewrite == "skeleton"
    model = nn.Module()
    model.coda = nn.ModuleList([Counted(), Counted()])
    namespace: dict = {}
    exec(render_fix(fix, "toy", "seen"), namespace)  # noqa: S102 - generated code
    namespace["_patch_toy_block_replay"](model)
    hidden = torch.randn(1, 3, 32)
    for index, block in enumerate(model.coda):  # called by the model, the step is kept out of the block inputs
        block(hidden, torch.tensor(-1 - index))
    for block in model.coda:
        block.step = None
        block(hidden)  # replayed alone, as AutoRound does
    assert [block.step for block in model.coda] == [-1, -2]
