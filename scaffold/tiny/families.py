"""Classify config attribute names into size families (hidden width, head count, layers, experts, ...).

The shrinker never asks "which model is this?": it asks "what kind of number is this attribute?".
Names are matched on the conventions transformers and remote code share (``num_*_heads``,
``*_intermediate_size``, ``*_token_id``...), so new architectures are covered by the same rules.
"""

from __future__ import annotations

import re
from enum import Enum


class Family(str, Enum):
    HIDDEN = "hidden"  # the residual-stream width
    WIDTH = "width"  # other widths that scale with the hidden size (MLP, low-rank, dt rank)
    HEADS = "heads"  # a number of heads (query, linear-attention, mamba heads)
    KV_HEADS = "kv_heads"  # key/value heads of grouped-query attention, or head groups that must divide the heads
    HEAD_DIM = "head_dim"  # a per-head dimension (head_dim, rotary_dim, MLA rope/nope/v dims)
    LAYERS = "layers"  # a number of blocks in a stack
    LAYER_SUBSET = "layer_subset"  # how many of a stack's layers are of some kind (shared-KV, input, output...)
    PERIOD = "period"  # "every N layers" schedules
    OFFSET = "offset"  # position inside such a schedule
    DENSE_PREFIX = "dense_prefix"  # the first K layers are dense, the others MoE
    EXPERTS = "experts"
    SHARED_EXPERTS = "shared_experts"
    TOP_K = "top_k"
    EXPERT_GROUPS = "expert_groups"
    TOPK_GROUPS = "topk_groups"
    VOCAB = "vocab"
    TOKEN_ID = "token_id"


_EXACT: dict[str, Family] = {
    **dict.fromkeys(("hidden_size", "d_model", "n_embd", "n_embed", "embed_dim", "dim", "model_dim"), Family.HIDDEN),
    **dict.fromkeys(
        (
            "n_inner",
            "d_ff",
            "hidden_dim",
            "kv_lora_rank",
            "q_lora_rank",
            "o_lora_rank",
            "dt_rank",
            "mamba_dt_rank",
            "time_step_rank",
            "ffn_hidden_size",
        ),
        Family.WIDTH,
    ),
    **dict.fromkeys(("n_head", "n_heads", "num_heads", "num_attention_heads", "num_query_heads"), Family.HEADS),
    **dict.fromkeys(("kv_channels", "rotary_dim", "rotary_emb_dim", "d_head", "attention_head_size"), Family.HEAD_DIM),
    **dict.fromkeys(
        (
            "num_hidden_layers",
            "n_layer",
            "n_layers",
            "num_layers",
            "encoder_layers",
            "decoder_layers",
            "num_decoder_layers",
            "num_encoder_layers",
        ),
        Family.LAYERS,
    ),
    **dict.fromkeys(
        ("first_k_dense_replace", "first_k_dense", "num_dense_layers", "n_dense_layers"), Family.DENSE_PREFIX
    ),
    **dict.fromkeys(
        (
            "num_experts_per_tok",
            "num_experts_per_token",
            "experts_per_token",
            "top_k",
            "moe_top_k",
            "moe_topk",
            "moe_k",
            "router_top_k",
            "num_selected_experts",
            "top_k_experts",
        ),
        Family.TOP_K,
    ),
    **dict.fromkeys(("n_group", "num_expert_group", "n_expert_groups"), Family.EXPERT_GROUPS),
    **dict.fromkeys(("topk_group", "topk_groups", "num_topk_group", "top_k_group"), Family.TOPK_GROUPS),
    **dict.fromkeys(("n_vocab",), Family.VOCAB),
    **dict.fromkeys(("pad_id", "bos_id", "eos_id", "unk_id", "sep_id", "cls_id", "mask_id"), Family.TOKEN_ID),
}

# (pattern, family), first match wins; checked after the exact names.
_PATTERNS: list[tuple[re.Pattern[str], Family]] = [
    (re.compile(r"token_(id|ids|index)$|_token_id_\w+$"), Family.TOKEN_ID),
    (re.compile(r"(^|_)vocab(_size)?(_|$)"), Family.VOCAB),
    (re.compile(r"(key_value|kv)_heads$|^n_kv_heads?$|query_group(s|_num)$|(^|_)n_?groups$"), Family.KV_HEADS),
    (re.compile(r"(^|_)(num|n)_\w*heads$|_attention_heads$"), Family.HEADS),
    (re.compile(r"head_?dim$|head_size$|(^|_)d_head$"), Family.HEAD_DIM),
    (
        re.compile(r"intermediate_size$|ffn_dim$|ffn_hidden_size$|(^|_)lora_rank$|dt_rank$|d_ssm$|d_inner$"),
        Family.WIDTH,
    ),
    (re.compile(r"_hidden_size$|^hidden_size_\w+$"), Family.WIDTH),
    (re.compile(r"shared_experts?$"), Family.SHARED_EXPERTS),
    (re.compile(r"experts_per_tok(en)?$"), Family.TOP_K),
    (re.compile(r"^(num|n|moe_num)_\w*experts$|^num_local_experts$"), Family.EXPERTS),
    (re.compile(r"^(num|n)_(?!nextn|mtp)\w*layers$"), Family.LAYER_SUBSET),
    (re.compile(r"_(period|interval|freq|frequency|step)$"), Family.PERIOD),
    (re.compile(r"_offset$"), Family.OFFSET),
]


def family_of(name: str) -> Family | None:
    """The size family of a config attribute, or ``None`` when it is not a size the shrinker touches."""
    if name in _EXACT:
        return _EXACT[name]
    for pattern, family in _PATTERNS:
        if pattern.search(name):
            return family
    return None


def is_layer_index_list_name(name: str) -> bool:
    """Whether a list attribute of this name holds layer indices (``mlp_only_layers``, ``full_attn_idxs``...)."""
    return bool(re.search(r"layers?$|idxs?$|indices$|_ids$|layer_ids|layer_idx", name)) and "token" not in name
