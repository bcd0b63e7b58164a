"""Hand-written small architectures, each tripping exactly one static detector (plus a clean control).

Every arch is a tiny causal LM: embedding -> stack of blocks -> norm -> lm_head. Variants change one
thing: where the stack lives (decoy), the projection class, fused experts, a shape, or a config key.
They register with the transformers auto classes under unique ``sa_*`` model types.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from scaffold.build.meta import build_meta
from scaffold.inspection.context import InspectContext
from scaffold.resolve.target import ResolvedTarget
from scaffold.tiny.model import TinyModel


class StaticArchConfig(PretrainedConfig):
    """transformers 5 configs are dataclasses: fields are annotated class attributes."""

    model_type = "sa_dense"

    vocab_size: int = 128
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_experts: int = 4
    num_experts_per_tok: int = 2
    hidden_act: str = "silu"


class ExactProj(nn.Module):
    """A projection class AutoRound does not know; its forward is exactly ``F.linear``."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * 0.05)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class ScaledProj(ExactProj):
    """Like :class:`ExactProj` but scales its output: a linear map that is not plain ``F.linear``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * F.linear(x, self.weight, self.bias)


class Mlp(nn.Module):
    def __init__(self, config: StaticArchConfig, proj: type[nn.Module] = nn.Linear):
        super().__init__()
        self.up_proj = proj(config.hidden_size, config.intermediate_size)
        self.down_proj = proj(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.up_proj(x)))


class FusedExperts(nn.Module):
    """Undecorated fused experts: ``gate_up_proj`` [E, 2I, H], ``down_proj`` [E, H, I] (layout options for probes)."""

    def __init__(
        self,
        config: StaticArchConfig,
        interleaved: bool = False,
        transposed: bool = False,
        up_first: bool = False,
        act=F.silu,
    ):
        super().__init__()
        e, h, i = config.num_experts, config.hidden_size, config.intermediate_size
        self.interleaved, self.transposed, self.up_first, self.act = interleaved, transposed, up_first, act
        gate_up, down = ((e, h, 2 * i), (e, i, h)) if transposed else ((e, 2 * i, h), (e, h, i))
        self.gate_up_proj = nn.Parameter(torch.randn(*gate_up) * 0.05)
        self.down_proj = nn.Parameter(torch.randn(*down) * 0.05)

    def _proj(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x @ w if self.transposed else x @ w.t()

    def forward(self, hidden_states, top_k_index, top_k_weights):
        out = torch.zeros_like(hidden_states)
        for e in range(self.gate_up_proj.shape[0]):
            tok, slot = torch.where(top_k_index == e)
            if tok.numel() == 0:
                continue
            h = self._proj(hidden_states[tok], self.gate_up_proj[e])
            gate, up = (h[..., 0::2], h[..., 1::2]) if self.interleaved else h.chunk(2, dim=-1)
            if self.up_first:
                gate, up = up, gate
            y = self._proj(self.act(gate) * up, self.down_proj[e])
            out.index_add_(0, tok, y * top_k_weights[tok, slot, None])
        return out


class MoeBlock(nn.Module):
    def __init__(self, config: StaticArchConfig, **experts_kwargs):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.gate = nn.Linear(config.hidden_size, config.num_experts, bias=False)
        self.experts = FusedExperts(config, **experts_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        weights, index = torch.topk(self.gate(flat).softmax(-1), self.top_k, dim=-1)
        return self.experts(flat, index, weights).reshape(shape)


class Block(nn.Module):
    def __init__(self, config: StaticArchConfig, mlp: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size)
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class Inner(nn.Module):
    def __init__(self, config: StaticArchConfig, make_mlp, sequential: bool = False, decoy: bool = False):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        if decoy:  # a ModuleList AutoRound takes for the block stack
            self.embed_helpers = nn.ModuleList([nn.Embedding(config.vocab_size, config.hidden_size) for _ in range(2)])
        blocks = [Block(config, make_mlp(config)) for _ in range(config.num_hidden_layers)]
        self.layers = nn.Sequential(*blocks) if sequential else nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.embed_tokens(input_ids)
        for helper in getattr(self, "embed_helpers", []):
            h = h + helper(input_ids)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h)


class StaticArchModel(PreTrainedModel):
    config_class = StaticArchConfig
    base_model_prefix = "model"
    make_mlp = staticmethod(lambda config: Mlp(config))
    sequential = False
    decoy = False

    def __init__(self, config: StaticArchConfig):
        super().__init__(config)
        self.model = Inner(config, self.make_mlp, sequential=self.sequential, decoy=self.decoy)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:  # weights are made in __init__ already
        pass

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        return CausalLMOutput(logits=self.lm_head(self.model(input_ids)))


def _arch(model_type: str, config_attrs: dict | None = None, **model_attrs) -> tuple[type, type]:
    fields = config_attrs or {}
    namespace = {"model_type": model_type, "__annotations__": {k: type(v) for k, v in fields.items()}, **fields}
    config_cls = type(f"{model_type}_Config", (StaticArchConfig,), namespace)
    model_cls = type(f"{model_type}_ForCausalLM", (StaticArchModel,), {"config_class": config_cls, **model_attrs})
    return config_cls, model_cls


# model_type -> (config class, model class). Each non-control arch trips exactly one detector.
ARCHS: dict[str, tuple[type, type]] = {
    "sa_dense": _arch("sa_dense"),
    "sa_decoy": _arch("sa_decoy", sequential=True, decoy=True),  # block_detection
    "sa_sequential": _arch("sa_sequential", sequential=True),  # block_detection: AutoRound finds no blocks
    "sa_custom_linear": _arch("sa_custom_linear", make_mlp=staticmethod(lambda c: Mlp(c, ExactProj))),  # layer_types
    "sa_fused_moe": _arch("sa_fused_moe", make_mlp=staticmethod(lambda c: MoeBlock(c))),  # fused_moe
    # ignore_layers reports it as fine: AutoRound keeps non-divisible shapes in float by itself
    "sa_non_divisible": _arch("sa_non_divisible", {"intermediate_size": 48}),
    "sa_mllm_key": _arch("sa_mllm_key", {"image_token_id": 3}),  # mllm_misdetection
}
DETECTOR_OF = {
    "sa_decoy": "block_detection",
    "sa_sequential": "block_detection",
    "sa_custom_linear": "layer_types",
    "sa_fused_moe": "fused_moe",
    "sa_mllm_key": "mllm_misdetection",
}


def register_all() -> None:
    for model_type, (config_cls, model_cls) in ARCHS.items():
        AutoConfig.register(model_type, config_cls, exist_ok=True)
        AutoModelForCausalLM.register(config_cls, model_cls, exist_ok=True)


def tiny_of(config: PretrainedConfig, model_cls: type, seed: int = 0) -> TinyModel:
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    inputs = {"input_ids": torch.randint(0, config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(seed))}
    return TinyModel(model=model, config=config, auto_class="AutoModelForCausalLM", inputs=inputs, strategy="hand")


def make_context(model_type: str, *, dynamic: bool = True, group_size: int = 32) -> InspectContext:
    """An InspectContext for a registered arch: meta skeleton through the real build, tiny instance preset."""
    register_all()
    config_cls, model_cls = ARCHS[model_type]
    config = config_cls()
    target = ResolvedTarget(
        spec=f"transformers:{model_type}", kind="transformers", config=config, model_type=model_type
    )
    meta = build_meta(config, where=target.spec)
    tiny = tiny_of(config_cls(), model_cls) if dynamic else None
    return InspectContext(target=target, meta_model=meta, group_size=group_size, dynamic=dynamic, _tiny=tiny)
