"""ScafCombo: three AutoRound problems in one decoder.

- experts fused into 3-D parameters ``w_in`` [E, 2*I, H] / ``w_out`` [E, H, I] in an undecorated container;
- attention projections are ``QLinear`` (a custom class whose forward is ``F.linear``), not ``nn.Linear``;
- a per-model ``residual_gate`` vector [H], computed once in ``ScafComboModel.forward`` and handed to every
  layer; it has no batch dimension, so AutoRound's per-sample split of block inputs breaks it.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_scafcombo import ScafComboConfig


class QLinear(nn.Module):
    """The project's own linear layer (weight [out, in], optional bias); forward is exactly ``F.linear``."""

    def __init__(self, in_features, out_features, bias=False):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class ScafComboRMSNorm(nn.Module):
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


class ScafComboAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.q_proj = QLinear(config.hidden_size, self.num_heads * self.head_dim)
        self.k_proj = QLinear(config.hidden_size, self.num_kv_heads * self.head_dim)
        self.v_proj = QLinear(config.hidden_size, self.num_kv_heads * self.head_dim)
        self.o_proj = QLinear(self.num_heads * self.head_dim, config.hidden_size)

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


class ScafComboFusedExperts(nn.Module):
    """All experts in two 3-D parameters; forward(hidden [T,H], top_k_index [T,k], top_k_weights [T,k])."""

    def __init__(self, config):
        super().__init__()
        self.num_experts = config.num_experts
        self.intermediate = config.moe_intermediate_size
        self.w_in = nn.Parameter(torch.empty(config.num_experts, 2 * self.intermediate, config.hidden_size))
        self.w_out = nn.Parameter(torch.empty(config.num_experts, config.hidden_size, self.intermediate))

    def forward(self, hidden, top_k_index, top_k_weights):
        out = torch.zeros_like(hidden)
        for expert in range(self.num_experts):
            token, slot = torch.where(top_k_index == expert)
            if token.numel() == 0:
                continue
            gate, up = F.linear(hidden[token], self.w_in[expert]).chunk(2, dim=-1)
            expert_out = F.linear(F.silu(gate) * up, self.w_out[expert])
            out.index_add_(0, token, expert_out * top_k_weights[token, slot, None])
        return out


class ScafComboSparseBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.gate = nn.Linear(config.hidden_size, config.num_experts, bias=False)
        self.experts = ScafComboFusedExperts(config)

    def forward(self, hidden_states):
        batch, seq, hidden = hidden_states.shape
        flat = hidden_states.reshape(-1, hidden)
        probs = self.gate(flat).softmax(-1, dtype=torch.float32)
        top_k_weights, top_k_index = probs.topk(self.top_k, dim=-1)
        top_k_weights = (top_k_weights / top_k_weights.sum(-1, keepdim=True)).to(flat.dtype)
        return self.experts(flat, top_k_index, top_k_weights).reshape(batch, seq, hidden)


class ScafComboDecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = ScafComboRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = ScafComboAttention(config)
        self.post_attention_layernorm = ScafComboRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = ScafComboSparseBlock(config)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, residual_gate=None, **kwargs):
        attn = self.self_attn(self.input_layernorm(hidden_states), position_embeddings, attention_mask)
        hidden_states = hidden_states + residual_gate * attn  # residual_gate: [H], shared by all layers
        return hidden_states + residual_gate * self.mlp(self.post_attention_layernorm(hidden_states))


class ScafComboPreTrainedModel(PreTrainedModel):
    config_class = ScafComboConfig
    base_model_prefix = "model"
    _no_split_modules = ["ScafComboDecoderLayer"]

    def _init_weights(self, module):
        with torch.no_grad():
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2:
                    param.normal_(0.0, self.config.initializer_range)
                elif name == "weight":
                    param.fill_(1.0)
                else:
                    param.zero_()


class ScafComboModel(ScafComboPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([ScafComboDecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = ScafComboRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.residual_logits = nn.Parameter(torch.zeros(config.hidden_size))
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, **kwargs):
        hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        batch, seq, _ = hidden_states.shape
        if position_ids is None:
            position_ids = torch.arange(seq, device=hidden_states.device)[None].expand(batch, seq)
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        position_embeddings = rotary_cos_sin(position_ids, head_dim, self.config.rope_theta, hidden_states.dtype)
        mask = causal_mask(attention_mask, batch, seq, hidden_states.dtype, hidden_states.device)
        residual_gate = 2.0 * torch.sigmoid(self.residual_logits).to(hidden_states.dtype)  # once per forward
        for layer in self.layers:
            hidden_states = layer(
                hidden_states, position_embeddings=position_embeddings, attention_mask=mask, residual_gate=residual_gate
            )
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states))


class ScafComboForCausalLM(ScafComboPreTrainedModel, GenerationMixin):
    def __init__(self, config):
        super().__init__(config)
        self.model = ScafComboModel(config)
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
