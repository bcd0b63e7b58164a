"""ScafAli: a llama-style dense decoder with ALiBi attention bias instead of rotary embeddings.

The bias ``[heads, S, S]`` is computed once in ``ScafAliModel.forward`` and handed to every layer as
``position_bias``. It has no batch dimension, so AutoRound's per-sample split of cached block inputs
cuts it along the heads axis unless ``position_bias`` is declared a shared cache key.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_scafali import ScafAliConfig


class ScafAliRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x):
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype)


def alibi_bias(num_heads, seq, max_bias, dtype, device):
    """Per-model ALiBi bias [heads, S, S]: head h penalises distance with slope 2^(-max_bias * (h+1) / heads)."""
    slopes = 2.0 ** (-max_bias * torch.arange(1, num_heads + 1, dtype=torch.float32, device=device) / num_heads)
    positions = torch.arange(seq, device=device)
    distance = (positions[None, :] - positions[:, None]).clamp(max=0).float()
    return (slopes[:, None, None] * distance[None]).to(dtype)


def causal_mask(attention_mask, batch, seq, dtype, device):
    mask = torch.full((seq, seq), torch.finfo(dtype).min, dtype=dtype, device=device).triu(1)
    mask = mask[None, None].expand(batch, 1, seq, seq)
    if attention_mask is not None:
        padding = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        mask = (mask + padding).clamp(min=torch.finfo(dtype).min)
    return mask


class ScafAliAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(self, hidden_states, position_bias, attention_mask=None):
        batch, seq, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        repeat = self.num_heads // self.num_kv_heads
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        scores = q @ k.transpose(-1, -2) / self.head_dim**0.5 + position_bias  # [B, h, S, S] + [h, S, S]
        if attention_mask is not None:
            scores = scores + attention_mask
        out = scores.softmax(-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq, -1))


class ScafAliMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ScafAliDecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = ScafAliRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = ScafAliAttention(config)
        self.post_attention_layernorm = ScafAliRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = ScafAliMLP(config)

    def forward(self, hidden_states, position_bias=None, attention_mask=None, **kwargs):
        hidden_states = hidden_states + self.self_attn(
            self.input_layernorm(hidden_states), position_bias, attention_mask
        )
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class ScafAliPreTrainedModel(PreTrainedModel):
    config_class = ScafAliConfig
    base_model_prefix = "model"
    _no_split_modules = ["ScafAliDecoderLayer"]

    def _init_weights(self, module):
        with torch.no_grad():
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2:
                    param.normal_(0.0, self.config.initializer_range)
                elif name == "weight":
                    param.fill_(1.0)
                else:
                    param.zero_()


class ScafAliModel(ScafAliPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([ScafAliDecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = ScafAliRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, **kwargs):
        hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        batch, seq, _ = hidden_states.shape
        # Computed once per forward and shared by every layer; it has no batch dimension.
        bias = alibi_bias(
            self.config.num_attention_heads, seq, self.config.alibi_max_bias, hidden_states.dtype, hidden_states.device
        )
        mask = causal_mask(attention_mask, batch, seq, hidden_states.dtype, hidden_states.device)
        for layer in self.layers:
            hidden_states = layer(hidden_states, position_bias=bias, attention_mask=mask)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states))


class ScafAliForCausalLM(ScafAliPreTrainedModel, GenerationMixin):
    def __init__(self, config):
        super().__init__(config)
        self.model = ScafAliModel(config)
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
