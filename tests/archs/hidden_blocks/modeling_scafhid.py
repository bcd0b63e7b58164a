"""ScafHid: a llama-style dense decoder whose layers are held in an ``nn.ModuleDict``.

Next to it sits a decoy ``nn.ModuleList`` of rotary tables (no weights). AutoRound's block search
takes the first ModuleList it finds, so it picks the rotary tables and misses the decoder layers.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_scafhid import ScafHidConfig


class ScafHidRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x):
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype)


class ScafHidRotary(nn.Module):
    """One rotary table (no parameters); the model keeps one per attention flavour (local / global)."""

    def __init__(self, head_dim, theta):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta

    def forward(self, position_ids, dtype):
        return rotary_cos_sin(position_ids, self.head_dim, self.theta, dtype)


def rotary_cos_sin(position_ids, head_dim, theta, dtype):
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=position_ids.device) / head_dim)
    )
    freqs = position_ids[..., None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x, cos, sin):
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


def causal_mask(attention_mask, batch, seq, dtype, device):
    mask = torch.full((seq, seq), torch.finfo(dtype).min, dtype=dtype, device=device).triu(1)
    mask = mask[None, None].expand(batch, 1, seq, seq)
    if attention_mask is not None:
        padding = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        mask = (mask + padding).clamp(min=torch.finfo(dtype).min)
    return mask


class ScafHidAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(self, hidden_states, position_embeddings, attention_mask=None):
        batch, seq, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = position_embeddings
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        repeat = self.num_heads // self.num_kv_heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        scores = q @ k.transpose(-1, -2) / self.head_dim**0.5
        if attention_mask is not None:
            scores = scores + attention_mask
        out = scores.softmax(-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq, -1))


class ScafHidMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ScafHidDecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = ScafHidRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = ScafHidAttention(config)
        self.post_attention_layernorm = ScafHidRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = ScafHidMLP(config)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, **kwargs):
        hidden_states = hidden_states + self.self_attn(
            self.input_layernorm(hidden_states), position_embeddings, attention_mask
        )
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class ScafHidPreTrainedModel(PreTrainedModel):
    config_class = ScafHidConfig
    base_model_prefix = "model"
    _no_split_modules = ["ScafHidDecoderLayer"]

    def _init_weights(self, module):
        with torch.no_grad():
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2:
                    param.normal_(0.0, self.config.initializer_range)
                elif name == "weight":
                    param.fill_(1.0)
                else:
                    param.zero_()


class ScafHidModel(ScafHidPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        head_dim = config.hidden_size // config.num_attention_heads
        # The decoy: a ModuleList of positional helpers (default and long-context rotary tables).
        self.rotary_bank = nn.ModuleList(
            [ScafHidRotary(head_dim, config.local_rope_theta), ScafHidRotary(head_dim, config.rope_theta)]
        )
        # The real blocks, in a ModuleDict that AutoRound's block search walks past.
        self.layers = nn.ModuleDict({f"block{i}": ScafHidDecoderLayer(config) for i in range(config.num_hidden_layers)})
        self.norm = ScafHidRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, **kwargs):
        hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        batch, seq, _ = hidden_states.shape
        if position_ids is None:
            position_ids = torch.arange(seq, device=hidden_states.device)[None].expand(batch, seq)
        tables = [rotary(position_ids, hidden_states.dtype) for rotary in self.rotary_bank]
        mask = causal_mask(attention_mask, batch, seq, hidden_states.dtype, hidden_states.device)
        # the second table is the long-context one, switched on by ``use_long_rope``
        position_embeddings = tables[1 if getattr(self.config, "use_long_rope", False) else 0]
        for layer in self.layers.values():
            hidden_states = layer(hidden_states, position_embeddings=position_embeddings, attention_mask=mask)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states))


class ScafHidForCausalLM(ScafHidPreTrainedModel, GenerationMixin):
    def __init__(self, config):
        super().__init__(config)
        self.model = ScafHidModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def forward(
        self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, labels=None, **kwargs
    ):
        hidden_states = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds
        ).last_hidden_state
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1))
        return CausalLMOutputWithPast(loss=loss, logits=logits)
