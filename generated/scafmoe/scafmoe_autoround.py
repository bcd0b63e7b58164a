"""AutoRound adaptation for `scafmoe` (ScafMoeForCausalLM), applied at run time.

Import this module before creating ``AutoRound(...)``: it registers the changes listed in
REPORT.md with the installed auto-round. ``autoround/`` and ``edits.json`` next to it hold
the same changes for an AutoRound checkout.

Written and verified for auto-round 0.16.1, transformers 5.24.0
and torch 2.13.0 (autoround-scaffold 0.2.0).
"""

from __future__ import annotations

import warnings
from importlib.metadata import version

import auto_round.modeling.fused_moe.replace_modules as ar_modeling_fused_moe_replace_modules
import torch
from auto_round.modeling.fused_moe.replace_modules import LazyImport, ReplacementModuleBase
from auto_round.modeling.fused_moe.utils import _update_parameter
from auto_round.utils import clear_memory
from torch import nn
from transformers.activations import ACT2FN

WRITTEN_FOR = {"auto_round": "0.16.1", "transformers": "5.24.0"}
MODEL_TYPE = "scafmoe"

_INSTALLED = {"auto_round": version("auto-round"), "transformers": version("transformers")}
if _INSTALLED != WRITTEN_FOR:
    warnings.warn(f"{__name__} was verified with {WRITTEN_FOR}, not {_INSTALLED}: run `scaffold verify`", stacklevel=2)


class ScafMoeFusedExpertsExpertMLP(nn.Module):
    """One expert as separate ``nn.Linear`` projections."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.act_fn = ACT2FN["silu"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LinearScafMoeFusedExperts(ReplacementModuleBase):
    """A fused experts container with its 3-D expert weights split into per-expert ``nn.Linear`` layers.

    Replaces ``ScafMoeFusedExperts``.
    The experts are built on the meta device here and filled from the original tensors in
    ``_materialize_weights``, which AutoRound calls block by block before tuning. Routing stays in
    the parent MoE block; ``forward`` keeps the original call convention and return value.
    """

    expert_class = ScafMoeFusedExpertsExpertMLP

    def __init__(self, original: nn.Module, config: object = None) -> None:
        super().__init__(original)
        down = original.w_out
        self.num_experts = down.shape[0]
        hidden_size, intermediate_size = down.shape[1], down.shape[2]
        with torch.device("meta"):
            for index in range(self.num_experts):
                self.add_module(str(index), self.expert_class(hidden_size, intermediate_size))

    @classmethod
    def original_module_class(cls) -> str:
        return "ScafMoeFusedExperts"

    @classmethod
    def from_original(
        cls,
        original: nn.Module,
        config: object = None,
        **kwargs: object,
    ) -> ReplacementModuleBase:
        return cls(original, config)

    def __getitem__(self, index: int) -> nn.Module:
        return self._modules[str(index)]

    def __len__(self) -> int:
        return self.num_experts

    def _materialize_weights(self) -> None:
        original = self._get_original_module()
        if original is None or any(p.device.type == "meta" for p in original.parameters()):
            return  # still a meta skeleton: AutoRound's loader fills the original first
        for index in range(self.num_experts):
            expert = self[index]
            gate_up = original.w_in[index]
            gate, up = gate_up.chunk(2, dim=0)
            _update_parameter(expert.gate_proj, "weight", gate.detach().clone(memory_format=torch.contiguous_format))
            _update_parameter(expert.up_proj, "weight", up.detach().clone(memory_format=torch.contiguous_format))
            down = original.w_out[index]
            _update_parameter(expert.down_proj, "weight", down.detach().clone(memory_format=torch.contiguous_format))
        clear_memory()

    def forward(
        self,
        hidden: torch.Tensor,
        top_k_index: torch.Tensor,
        top_k_weights: torch.Tensor,
    ) -> torch.Tensor:
        tokens = hidden.reshape(-1, hidden.shape[-1])
        top_k_index = top_k_index.reshape(tokens.shape[0], -1)
        top_k_weights = top_k_weights.reshape(tokens.shape[0], -1)
        output = torch.zeros_like(tokens)
        for index in range(self.num_experts):
            token_idx, top_k_pos = torch.where(top_k_index == index)
            if token_idx.numel() == 0:
                continue
            expert_out = self[index](tokens[token_idx]) * top_k_weights[token_idx, top_k_pos, None]
            output.index_add_(0, token_idx, expert_out.to(output.dtype))
        return output.reshape(hidden.shape)


# Registrations: the same edits as edits.json, applied to the installed auto-round.
ar_modeling_fused_moe_replace_modules.BUILTIN_MODULES["scafmoe"] = LazyImport(__name__)
