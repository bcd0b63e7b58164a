"""Hand-written small architectures, each tripping exactly one dynamic detector (plus a clean control).

Every arch is a tiny causal LM: embedding -> stack of attention blocks -> norm -> lm_head. The variants
change only what the model passes to its blocks (or add a stack the forward never runs). They register
with the transformers auto classes under unique ``da_*`` model types.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from scaffold.build.meta import build_meta
from scaffold.inspection.context import InspectContext
from scaffold.resolve.target import ResolvedTarget
from scaffold.tiny.model import TinyModel


class DynamicArchConfig(PretrainedConfig):
    """transformers 5 configs are dataclasses: fields are annotated class attributes."""

    model_type = "da_plain"

    vocab_size: int = 128
    hidden_size: int = 64
    intermediate_size: int = 128
    num_attention_heads: int = 4
    num_hidden_layers: int = 2


class Attention(nn.Module):
    def __init__(self, config: DynamicArchConfig):
        super().__init__()
        h = config.hidden_size
        self.heads = config.num_attention_heads
        self.q_proj, self.k_proj = nn.Linear(h, h), nn.Linear(h, h)
        self.v_proj, self.o_proj = nn.Linear(h, h), nn.Linear(h, h)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = (p(x).view(b, s, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        if bias is not None:  # [heads, q, k]: per model, the same for every sample
            scores = scores + bias
        causal = torch.ones(s, s, dtype=torch.bool, device=x.device).triu(1)
        attn = scores.masked_fill(causal, float("-inf")).softmax(-1)
        return self.o_proj((attn @ v).transpose(1, 2).reshape(b, s, d))


class Block(nn.Module):
    def __init__(self, config: DynamicArchConfig):
        super().__init__()
        self.input_norm = nn.LayerNorm(config.hidden_size)
        self.attn = Attention(config)
        self.post_norm = nn.LayerNorm(config.hidden_size)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
        layer_scale: torch.Tensor | None = None,
        states: list[torch.Tensor] | None = None,
        window: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor]:
        h = hidden_states
        if window is not None:  # [batch, seq, 1]: which positions this layer keeps
            h = h * window
        if layer_scale is not None:
            h = h * (1.0 + layer_scale)
        if states is not None:
            h = h + states[0]
        h = h + self.attn(self.input_norm(h), bias=position_bias)
        h = h + self.down_proj(F.gelu(self.up_proj(self.post_norm(h))))
        return (h,)


class DynamicArchModel(PreTrainedModel):
    config_class = DynamicArchConfig
    base_model_prefix = "model"
    _no_split_modules = ["Block"]
    mtp_tower = False  # an extra stack of blocks the forward never runs
    block_class = Block

    def __init__(self, config: DynamicArchConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([self.block_class(config) for _ in range(config.num_hidden_layers)])
        if self.mtp_tower:
            self.mtp_layers = nn.ModuleList([Block(config) for _ in range(2)])
        self.rel_bias = nn.Parameter(torch.randn(config.num_attention_heads, 64, 64) * 0.1)
        self.norm = nn.LayerNorm(config.hidden_size)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:  # weights are made in __init__ already
        pass

    def block_kwargs(self, embeds: torch.Tensor, index: int) -> dict:
        """What the forward passes to block ``index`` besides the hidden states; variants override it."""
        return {}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        h = self.embed_tokens(input_ids)
        self._embeds = h
        for index, layer in enumerate(self.layers):
            h = layer(h, attention_mask=attention_mask, **self.block_kwargs(h, index))[0]
        return CausalLMOutput(logits=self.lm_head(self.norm(h)))


class SharedBiasModel(DynamicArchModel):
    """A relative-position bias ``[heads, seq, seq]`` computed once and passed to every block."""

    def block_kwargs(self, embeds: torch.Tensor, index: int) -> dict:
        if index == 0:
            s = embeds.shape[1]
            self._bias = self.rel_bias[:, :s, :s]
        return {"position_bias": self._bias}


class LayerScaleModel(DynamicArchModel):
    """Each block gets its own 0-d tensor (a layer-dependent scale)."""

    def block_kwargs(self, embeds: torch.Tensor, index: int) -> dict:
        return {"layer_scale": torch.tensor(0.1 * (index + 1))}


class StateListModel(DynamicArchModel):
    """Every block gets the same Python list holding the (per-sample) embedding output."""

    def block_kwargs(self, embeds: torch.Tensor, index: int) -> dict:
        if index == 0:
            self._states = [self._embeds]
        return {"states": self._states}


class PerLayerWindowModel(DynamicArchModel):
    """Blocks alternate between a full and a local window mask (per sample), like sliding/full attention layers."""

    def block_kwargs(self, embeds: torch.Tensor, index: int) -> dict:
        b, s, _ = embeds.shape
        window = torch.ones(b, s, 1)
        if index % 2:
            window[:, : s // 2] = 0.0
        return {"window": window}


class InplaceGateBlock(Block):
    """Scales its MLP gate in place: fine for inference, but sigmoid saved that output for the backward pass
    AutoRound tunes with, so stock AutoRound crashes in a way no replay or registry rule explains."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        h = hidden_states + self.attn(self.input_norm(hidden_states))
        gate = torch.sigmoid(self.up_proj(self.post_norm(h)))
        gate.mul_(2.0)
        return (h + self.down_proj(gate),)


class InplaceGateModel(DynamicArchModel):
    block_class = InplaceGateBlock


class HybridMaskBlock(Block):
    """A linear-attention layer (``linear``: zeroes padded positions with the raw ``[batch, seq]`` integer mask) or
    an attention layer (SDPA with a ``[batch, 1, q, k]`` boolean mask; a long mask makes SDPA raise)."""

    linear = False

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        h = hidden_states
        if self.linear:
            if attention_mask is not None:
                h = h * attention_mask[..., None].to(h.dtype)
        else:
            b, s, d = h.shape
            a = self.attn
            q, k, v = (
                p(self.input_norm(h)).view(b, s, a.heads, -1).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj)
            )
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, is_causal=attention_mask is None)
            h = h + a.o_proj(out.transpose(1, 2).reshape(b, s, d))
        h = h + self.down_proj(F.gelu(self.up_proj(self.post_norm(h))))
        return (h,)


class HybridMaskModel(DynamicArchModel):
    """Linear-attention and attention layers alternate, as in transformers' hybrid models (qwen3_5, lara_mini):
    with padding, linear layers get the raw 2-D integer mask and attention layers a 4-D boolean causal mask; with
    nothing padded both get None. AutoRound caches layer 0's integer mask and replays layer 1 with it."""

    block_class = HybridMaskBlock

    def __init__(self, config: DynamicArchConfig):
        super().__init__(config)
        for index, layer in enumerate(self.layers):
            layer.linear = index % 2 == 0

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, use_cache=None, **kwargs):
        h = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        padded = attention_mask is not None and not bool(attention_mask.all())
        causal = None
        if padded:
            s = h.shape[1]
            causal = torch.ones(s, s, dtype=torch.bool, device=h.device).tril()[None, None]
            causal = causal & attention_mask[:, None, None, :].bool()
        for layer in self.layers:
            mask = (attention_mask if layer.linear else causal) if padded else None
            h = layer(h, attention_mask=mask)[0]
        return CausalLMOutput(logits=self.lm_head(self.norm(h)))


class SharedIntMaskModel(HybridMaskModel):
    """Every block is a linear-attention layer and gets the same raw 2-D integer mask: AutoRound splits and
    concatenates it per sample like any batched input, so its replay matches (a control: no finding)."""

    def __init__(self, config: DynamicArchConfig):
        super().__init__(config)
        for layer in self.layers:
            layer.linear = True


class SharedStateBlock(Block):
    """Writes its keys into the per-forward ``shared`` dict (``writes``) or adds the keys an earlier block wrote."""

    writes = False

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, shared: dict | None = None, **kwargs):
        h = hidden_states
        if self.writes:
            shared["kv"] = (self.attn.k_proj(h),)
        else:
            h = h + 0.5 * shared["kv"][0]
        h = h + self.attn(self.input_norm(h))
        h = h + self.down_proj(F.gelu(self.up_proj(self.post_norm(h))))
        return (h,)


class SharedStateModel(DynamicArchModel):
    """gemma4's KV sharing in miniature: the forward creates one dict per forward and hands it to every block;
    layer 0 stores its keys in it, later layers read them. AutoRound caches no dict, so a replayed block gets None."""

    block_class = SharedStateBlock

    def __init__(self, config: DynamicArchConfig):
        super().__init__(config)
        self.layers[0].writes = True

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        h, shared = self.embed_tokens(input_ids), {}
        for layer in self.layers:
            h = layer(h, shared=shared)[0]
        return CausalLMOutput(logits=self.lm_head(self.norm(h)))


def _arch(model_type: str, base: type = DynamicArchModel, **model_attrs) -> tuple[type, type]:
    config_cls = type(f"{model_type}_Config", (DynamicArchConfig,), {"model_type": model_type})
    model_cls = type(f"{model_type}_ForCausalLM", (base,), {"config_class": config_cls, **model_attrs})
    return config_cls, model_cls


# model_type -> (config class, model class). Each non-control arch trips exactly one detector.
ARCHS: dict[str, tuple[type, type]] = {
    "da_plain": _arch("da_plain"),
    "da_mtp_tower": _arch("da_mtp_tower", mtp_tower=True),
    "da_shared_bias": _arch("da_shared_bias", SharedBiasModel),
    "da_layer_scale": _arch("da_layer_scale", LayerScaleModel),
    "da_state_list": _arch("da_state_list", StateListModel),
    "da_layer_window": _arch("da_layer_window", PerLayerWindowModel),
    "da_inplace_gate": _arch("da_inplace_gate", InplaceGateModel),  # only stock_run (stock AutoRound crashes)
    "da_hybrid_mask": _arch("da_hybrid_mask", HybridMaskModel),
    "da_shared_int_mask": _arch("da_shared_int_mask", SharedIntMaskModel),  # control: replayed correctly
    "da_shared_state": _arch("da_shared_state", SharedStateModel),
}
DETECTOR_OF = {
    "da_mtp_tower": "forward_coverage",
    "da_shared_bias": "shared_cache_keys",
    "da_layer_scale": "block_replay",
    "da_state_list": "block_replay",
    "da_layer_window": "block_replay",
    "da_hybrid_mask": "block_replay",
    "da_shared_state": "block_replay",
}


def register_all() -> None:
    for model_type, (config_cls, model_cls) in ARCHS.items():
        AutoConfig.register(model_type, config_cls, exist_ok=True)
        AutoModelForCausalLM.register(config_cls, model_cls, exist_ok=True)


def tiny_of(config: PretrainedConfig, model_cls: type, seed: int = 0) -> TinyModel:
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "input_ids": torch.randint(0, config.vocab_size, (2, 8), generator=generator),
        "attention_mask": torch.ones(2, 8, dtype=torch.long),
    }
    return TinyModel(model=model, config=config, auto_class="AutoModelForCausalLM", inputs=inputs, strategy="hand")


def make_context(model_type: str, *, dynamic: bool = True) -> InspectContext:
    """An InspectContext for a registered arch: meta skeleton through the real build, tiny instance preset."""
    register_all()
    config_cls, model_cls = ARCHS[model_type]
    config = config_cls()
    spec = f"transformers:{model_type}"
    target = ResolvedTarget(spec=spec, kind="transformers", config=config, model_type=model_type)
    meta = build_meta(config, where=target.spec)
    tiny = tiny_of(config_cls(), model_cls) if dynamic else None
    return InspectContext(target=target, meta_model=meta, dynamic=dynamic, _tiny=tiny)
