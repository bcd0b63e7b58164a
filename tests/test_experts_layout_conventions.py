"""Fused experts called in other ways than (hidden, top-k indices, top-k weights): probe, then generate.

Each toy container below mimics a layout met in transformers' model zoo: rows grouped per expert in
equal blocks (llama4_text), rows sorted per expert with per-expert counts and one projection per expert
(jetmoe), every expert on every token weighted per token (inkling_text's shared experts), identity
("zero") experts past the weighted ones (longcat_flash), and 2-D biases. The probe must measure the
call and layout, and the generated replacement must reproduce the container's output.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.modes.fused_moe.probe import call_convention, capture_call, probe_layout
from scaffold.plan.model import Plan
from tests.test_generators_complex import import_source, ruff_clean

TOL = 1e-5
E, H, I = 4, 64, 32  # noqa: E741 - experts, hidden, intermediate


class BatchedExperts(nn.Module):
    """Rows arrive grouped per expert in E equal blocks; weights stored [E, in, out] (llama4_text)."""

    def __init__(self):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.randn(E, H, 2 * I) * 0.1)
        self.down_proj = nn.Parameter(torch.randn(E, I, H) * 0.1)

    def forward(self, hidden_states):
        x = hidden_states.view(E, -1, H)
        gate, up = torch.bmm(x, self.gate_up_proj).chunk(2, dim=-1)
        return torch.bmm(up * F.silu(gate), self.down_proj).view(-1, H)


class GroupedLinear(nn.Module):
    """One projection per expert, rows sorted per expert with their counts (jetmoe), optional bias."""

    def __init__(self, in_features=H, out_features=3 * I, bias=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(E, out_features, in_features) * 0.1)
        self.bias = nn.Parameter(torch.randn(E, out_features) * 0.1) if bias else None

    def forward(self, inputs, expert_size):
        chunks = inputs.split(expert_size, dim=0)
        outs = [F.linear(c, self.weight[i], None if self.bias is None else self.bias[i]) for i, c in enumerate(chunks)]
        return torch.cat(outs, dim=0)


class DenseExperts(nn.Module):
    """Every expert on every token, weighted per token before the down projection (inkling_text shared)."""

    def __init__(self):
        super().__init__()
        self.gate_proj = nn.Parameter(torch.randn(2, I, H) * 0.1)
        self.up_proj = nn.Parameter(torch.randn(2, I, H) * 0.1)
        self.down_proj = nn.Parameter(torch.randn(2, H, I) * 0.1)

    def forward(self, hidden_states, gammas):
        shape = hidden_states.shape
        x = hidden_states.reshape(1, -1, H).expand(2, -1, -1)
        g = gammas.reshape(-1, 2, 1).transpose(0, 1)
        a = F.silu(torch.bmm(x, self.gate_proj.transpose(1, 2))) * torch.bmm(x, self.up_proj.transpose(1, 2)) * g
        return torch.bmm(a, self.down_proj.transpose(1, 2)).sum(dim=0).view(shape)


class IdentityExperts(nn.Module):
    """Top-k routing where indices past the weighted experts are identity experts (longcat_flash)."""

    def __init__(self, zero_experts=3, bias=False):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.randn(E + zero_experts, 2 * I, H) * 0.1)  # extra slices unused
        self.down_proj = nn.Parameter(torch.randn(E, H, I) * 0.1)
        if bias:
            self.gate_up_proj_bias = nn.Parameter(torch.randn(E + zero_experts, 2 * I) * 0.1)
            self.down_proj_bias = nn.Parameter(torch.randn(E, H) * 0.1)
        self.has_bias = bias

    def forward(self, hidden_states, top_k_index, top_k_weights):
        out = torch.zeros_like(hidden_states)
        for e in top_k_index.unique().tolist():
            tok, pos = torch.where(top_k_index == e)
            x = hidden_states[tok]
            if e >= E:
                y = x
            else:
                bias = self.gate_up_proj_bias[e] if self.has_bias else None
                gate, up = F.linear(x, self.gate_up_proj[e], bias).chunk(2, dim=-1)
                y = F.linear(F.silu(gate) * up, self.down_proj[e], self.down_proj_bias[e] if self.has_bias else None)
            out.index_add_(0, tok, y * top_k_weights[tok, pos, None])
        return out


def _topk(tokens: int, experts: int) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.stack([torch.arange(tokens) % experts, (torch.arange(tokens) + 1) % experts], dim=1)
    return index, torch.softmax(torch.randn(tokens, 2), dim=-1)


def _calls(kind: str):
    """(module, call arguments for the probe, fresh call arguments for the equivalence check)."""
    if kind == "batched":
        return BatchedExperts(), (torch.randn(E * 6, H),), (torch.randn(E * 9, H),)
    if kind in ("grouped", "grouped_bias"):
        module = GroupedLinear(bias=kind == "grouped_bias")
        return module, (torch.randn(14, H), [3, 4, 0, 7]), (torch.randn(10, H), [1, 2, 3, 4])
    if kind == "dense":
        return DenseExperts(), (torch.randn(2, 5, H), torch.rand(10, 2)), (torch.randn(3, 4, H), torch.rand(12, 2))
    if kind in ("identity", "identity_bias"):
        module = IdentityExperts(bias=kind == "identity_bias")
        probe_x, fresh_x = torch.randn(16, H), torch.randn(21, H)
        return module, (probe_x, *_topk(16, E + 3)), (fresh_x, *_topk(21, E + 3))
    raise ValueError(kind)


def _finding(module: nn.Module, call: dict, layout: dict) -> Finding:
    """The finding ``scaffold.modes.fused_moe.detect`` records (evidence keys of docs/findings-schema.md)."""
    params = {n: list(p.shape) for n, p in module.named_parameters() if p.dim() == 3}
    return Finding(
        mode=Mode.FUSED_MOE,
        severity=Severity.SILENT,
        summary="toy fused experts",
        fix="replace",
        modules=["model.layers.0.mlp.experts"],
        classes=[type(module).__name__],
        evidence={
            "class": type(module).__name__,
            "num_experts": next(iter(params.values()))[0],
            "params": params,
            "call": call,
            "layout": layout,
        },
        probe="tiny",
    )


@pytest.fixture
def replacement_registry():
    """Forget replacement classes registered by a test (AutoRound refuses duplicate registrations)."""
    from auto_round.modeling.fused_moe.replace_modules import ReplacementModuleBase

    before = dict(ReplacementModuleBase._replacement_registry)
    yield
    ReplacementModuleBase._replacement_registry.clear()
    ReplacementModuleBase._replacement_registry.update(before)


EXPECTED = {
    "batched": ("batched", {"gate_up": "concatenated", "transposed": True, "activation": "silu"}),
    "grouped": ("grouped", {"gate_up": "single", "transposed": False, "bias": False}),
    "grouped_bias": ("grouped", {"gate_up": "single", "bias": True}),
    "dense": ("dense", {"gate_up": "separate", "transposed": False, "activation": "silu"}),
    "identity": ("topk", {"gate_up": "concatenated", "identity_experts": True, "experts_with_weights": E}),
    "identity_bias": ("topk", {"gate_up": "concatenated", "identity_experts": True, "bias": True}),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_probe_measures_the_convention_and_generated_replacement_matches(kind, tmp_path, replacement_registry):
    from scaffold.modes.fused_moe import generate as fused_moe

    torch.manual_seed(0)
    module, probe_args, fresh_args = _calls(kind)
    module.eval()
    call = capture_call(module, lambda: module(*probe_args))
    convention = call_convention(module, call, H)
    layout = probe_layout(module, call, convention, "silu")
    convention_name, expected = EXPECTED[kind]
    assert convention["convention"] == convention_name
    assert layout["probed"] is True, layout
    assert {k: layout.get(k) for k in expected} == expected

    plan = Plan(model_type="toy_moe", model_class="ToyForCausalLM")
    fused_moe.generate(_finding(module, convention, layout), plan)
    assert not plan.items[0].todos
    (facts,) = plan.test_data["fused_moe"]
    assert facts["convention"] == convention_name and not facts["skeleton"]
    assert (facts["index_arg"] is None) == (convention_name != "topk")
    generated = import_source(plan.files[0].content, tmp_path, f"gen_conv_{kind}")
    replacement = getattr(generated, f"Linear{type(module).__name__}").from_original(module, None)
    replacement.materialize_weights()
    linears = [m for m in replacement.modules() if isinstance(m, nn.Linear)]
    per_expert = 1 if layout["gate_up"] == "single" else 3
    assert len(linears) == per_expert * layout.get("experts_with_weights", E if kind != "dense" else 2)
    with torch.no_grad():
        expected_out, got = module(*fresh_args), replacement(*fresh_args)
    assert got.shape == expected_out.shape
    assert (got - expected_out).abs().max().item() <= TOL


def test_generated_conventions_are_ruff_clean(tmp_path, replacement_registry):
    from scaffold.modes.fused_moe import generate as fused_moe

    plan = Plan(model_type="toy_moe", model_class="ToyForCausalLM")
    for kind in ("batched", "grouped_bias", "dense", "identity_bias"):
        torch.manual_seed(0)
        module, probe_args, _ = _calls(kind)
        call = capture_call(module, lambda module=module, probe_args=probe_args: module(*probe_args))
        convention = call_convention(module, call, H)
        fused_moe.generate(_finding(module, convention, probe_layout(module, call, convention, "silu")), plan)
    ruff_clean(plan.files[0].content, tmp_path)


def test_unmatched_layout_todo_names_the_closest_candidate(tmp_path, replacement_registry):
    """A layout no candidate reproduces leaves a skeleton whose TODO says why, with the closest candidate."""
    from scaffold.modes.fused_moe import generate as fused_moe

    class TanhBatched(BatchedExperts):
        def forward(self, hidden_states):
            x = hidden_states.view(E, -1, H)
            gate, up = torch.bmm(x, self.gate_up_proj).chunk(2, dim=-1)
            return torch.bmm(up * torch.tanh(gate), self.down_proj).view(-1, H)

    torch.manual_seed(0)
    module = TanhBatched()
    call = capture_call(module, lambda: module(torch.randn(E * 3, H)))
    convention = call_convention(module, call, H)
    layout = probe_layout(module, call, convention, "silu")
    assert convention["convention"] == "batched" and layout["probed"] is False and "closest" in layout
    plan = Plan(model_type="toy_moe", model_class="ToyForCausalLM")
    fused_moe.generate(_finding(module, convention, layout), plan)
    (todo,) = plan.items[0].todos
    assert "no candidate layout reproduces the module output" in todo and "closest candidate" in todo
    assert "TODO(scaffold)" in plan.files[0].content
