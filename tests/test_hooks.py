"""scaffold.inspection.hooks: the one call-capture helper and the one first_tensor."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from scaffold.inspection.hooks import capture_calls, first_tensor


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, hidden, scale=1.0, bias=None):
        if scale == 0:
            raise ValueError("scale 0")
        hidden.mul_(scale)  # in place: a copied input keeps the value the block was called with
        return self.proj(hidden), hidden.sum()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])

    def forward(self, x, scale=1.0):
        for block in self.blocks:
            x = block(x, scale=scale, bias=torch.zeros(1))[0]
        return x


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


def test_records_args_kwargs_and_output_per_path_in_call_order():
    net = Net()
    x = torch.randn(2, 4)
    with capture_calls(net, ["blocks.0", "blocks.1", "blocks.1"]) as log:
        net(x.clone(), scale=2.0)
        net(x.clone(), scale=3.0)
    assert _hook_count(net) == 0
    assert set(log.calls) == {"blocks.0", "blocks.1"}
    assert [c.kwargs["scale"] for c in log.calls["blocks.1"]] == [2.0, 3.0]  # a repeated path is hooked once
    first = log.first("blocks.0")
    assert first.path == "blocks.0" and first.returned
    assert len(first.args) == 1 and set(first.kwargs) == {"scale", "bias"}
    assert torch.equal(first.kwargs["bias"], torch.zeros(1))
    out, total = first.output
    assert out.shape == (2, 4) and total.dim() == 0
    assert log.calls["blocks.1"][0].args[0] is first.output[0]  # block 0's output fed block 1
    assert log.reached("blocks.1") and not log.reached("blocks")


def test_outputs_false_keeps_no_output_but_marks_the_call_returned():
    net = Net()
    with capture_calls(net, ["blocks.0"], outputs=False) as log:
        net(torch.randn(1, 4))
    call = log.first("blocks.0")
    assert call.returned and call.output is None


def test_copy_inputs_keeps_the_values_before_the_forward_changed_them():
    net = Net()
    x = torch.ones(1, 4)
    with capture_calls(net, ["blocks.0"], copy_inputs=True) as log, torch.no_grad():
        net(x, scale=5.0)
    assert torch.equal(log.first("blocks.0").args[0], torch.ones(1, 4))
    assert torch.equal(x, torch.full((1, 4), 5.0))  # the forward did change it


def test_hooks_are_removed_when_the_body_raises():
    net = Net()
    with pytest.raises(ValueError, match="scale 0"), capture_calls(net, ["", "blocks.0", "blocks.1"]) as log:
        net(torch.randn(1, 4), scale=0)
    assert _hook_count(net) == 0
    call = log.first("blocks.0")
    assert call is not None and not call.returned and call.output is None  # started, then raised
    assert log.first("blocks.0", returned=True) is None
    assert not log.reached("blocks.1")


def test_hooks_are_removed_when_a_path_does_not_exist():
    net = Net()
    with pytest.raises(AttributeError), capture_calls(net, ["blocks.0", "blocks.9"]):
        pass
    assert _hook_count(net) == 0


def test_a_raised_call_then_a_retry_keeps_both_and_first_returned_is_the_retry():
    block = Block()
    with capture_calls(block, [""]) as log:
        with pytest.raises(ValueError):
            block(torch.randn(1, 4), scale=0)
        block(torch.randn(1, 4), scale=1.0)
    assert [c.returned for c in log.calls[""]] == [False, True]
    assert log.first("", returned=True).kwargs["scale"] == 1.0


T, U = torch.ones(2), torch.zeros(3)
IDS = torch.arange(3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T, T),
        ((T, U), T),
        ([U, T], U),
        (((T,), U), T),
        ((None, T), T),
        ({"a": None, "b": U}, U),
        ((), None),
        ([], None),
        ({}, None),
        (None, None),
        (3, None),
        ("text", None),
    ],
)
def test_first_tensor_searches_depth_first(value, expected):
    assert first_tensor(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T, T),
        ((T, U), T),
        (((T, U), U), T),
        ((None, T), None),
        ({"a": U, "b": T}, U),
        (([], T), None),
    ],
)
def test_first_tensor_leading_follows_only_the_first_element(value, expected):
    assert first_tensor(value, leading=True) is expected


def test_first_tensor_floating_passes_over_integer_tensors():
    assert first_tensor((IDS, T)) is IDS
    assert first_tensor((IDS, T), floating=True) is T
    assert first_tensor(IDS, floating=True) is None
    assert first_tensor((IDS, T), leading=True, floating=True) is None


def test_first_tensor_of_a_model_output_skips_unset_fields():
    output = CausalLMOutputWithPast(loss=None, logits=T)
    assert first_tensor(output) is T
    assert first_tensor(output, leading=True) is T


def test_first_tensor_reads_objects_with_to_tuple():
    class Legacy:
        def to_tuple(self):
            return (None, U)

    assert first_tensor(Legacy()) is U
    assert first_tensor(Legacy(), leading=True) is None
