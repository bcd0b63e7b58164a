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
