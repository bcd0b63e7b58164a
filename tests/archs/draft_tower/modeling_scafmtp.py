"""ScafMtp: a llama-style dense decoder with a speculative-decoding draft tower (``model.draft_layers``).

The draft tower is a second block stack that only ``ScafMtpModel.draft_hidden_states`` runs; the
default forward never calls it, so calibration never reaches its blocks.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_scafmtp import ScafMtpConfig


class ScafMtpRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x):
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype)


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


class ScafMtpAttention(nn.Module):
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


class ScafMtpMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ScafMtpDecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = ScafMtpRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = ScafMtpAttention(config)
        self.post_attention_layernorm = ScafMtpRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = ScafMtpMLP(config)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, **kwargs):
        hidden_states = hidden_states + self.self_attn(
            self.input_layernorm(hidden_states), position_embeddings, attention_mask
        )
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class ScafMtpPreTrainedModel(PreTrainedModel):
    config_class = ScafMtpConfig
    base_model_prefix = "model"
    _no_split_modules = ["ScafMtpDecoderLayer"]

    def _init_weights(self, module):
        with torch.no_grad():
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2:
                    param.normal_(0.0, self.config.initializer_range)
                elif name == "weight":
                    param.fill_(1.0)
                else:
                    param.zero_()


class ScafMtpModel(ScafMtpPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([ScafMtpDecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = ScafMtpRMSNorm(config.hidden_size, config.rms_norm_eps)
        # Draft tower for speculative decoding: only ``draft_hidden_states`` runs it, never ``forward``.
        self.draft_hnorm = ScafMtpRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.draft_enorm = ScafMtpRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.draft_proj = nn.Linear(2 * config.hidden_size, config.hidden_size, bias=False)
        self.draft_layers = nn.ModuleList([ScafMtpDecoderLayer(config) for _ in range(config.num_draft_layers)])
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, **kwargs):
        hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        batch, seq, _ = hidden_states.shape
        if position_ids is None:
            position_ids = torch.arange(seq, device=hidden_states.device)[None].expand(batch, seq)
        position_embeddings, mask = self._positions(position_ids, attention_mask, hidden_states)
        for layer in self.layers:
            hidden_states = layer(hidden_states, position_embeddings=position_embeddings, attention_mask=mask)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states))

    def _positions(self, position_ids, attention_mask, hidden_states):
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        position_embeddings = rotary_cos_sin(position_ids, head_dim, self.config.rope_theta, hidden_states.dtype)
        batch, seq, _ = hidden_states.shape
        return position_embeddings, causal_mask(attention_mask, batch, seq, hidden_states.dtype, hidden_states.device)

    def draft_hidden_states(self, last_hidden_state, next_input_ids):
        """Run the draft tower: predict the token after ``next_input_ids`` from the main model's states."""
        batch, seq, _ = last_hidden_state.shape
        position_ids = torch.arange(seq, device=last_hidden_state.device)[None].expand(batch, seq)
        position_embeddings, mask = self._positions(position_ids, None, last_hidden_state)
        token_embeds = self.embed_tokens(next_input_ids)
        fused = torch.cat([self.draft_hnorm(last_hidden_state), self.draft_enorm(token_embeds)], dim=-1)
        hidden_states = self.draft_proj(fused)
        for layer in self.draft_layers:
            hidden_states = layer(hidden_states, position_embeddings=position_embeddings, attention_mask=mask)
        return self.norm(hidden_states)


class ScafMtpForCausalLM(ScafMtpPreTrainedModel, GenerationMixin):
    def __init__(self, config):
        super().__init__(config)
        self.model = ScafMtpModel(config)
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
