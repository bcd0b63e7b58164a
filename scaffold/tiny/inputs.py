"""A forward-ready batch holding only the keys the model's ``forward`` accepts."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

BATCH = 2
SEQ_LEN = 8


def forward_parameters(model: nn.Module) -> set[str]:
    """Names of the explicit parameters of ``model.forward`` (``**kwargs`` is not a promise)."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return {"input_ids", "attention_mask"}
    return {
        name
        for name, p in signature.parameters.items()
        if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }


def special_token_ids(config: Any) -> set[int]:
    """Every ``*_token_id`` / ``*_token_index`` value in ``config`` and its sub-configs."""
    found: set[int] = set()

    def visit(tree: dict[str, Any]) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                visit(value)
            elif isinstance(key, str) and "token" in key and key.endswith(("_id", "_ids", "_index")):
                values = value if isinstance(value, list) else [value]
                found.update(v for v in values if isinstance(v, int) and not isinstance(v, bool))

    visit(config.to_dict())
    return found


def text_vocab_size(config: Any) -> int:
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    for source in (text, config):
        for name in ("vocab_size", "n_vocab", "padded_vocab_size"):
            value = getattr(source, name, None)
            if isinstance(value, int) and value > 0:
                return value
    return 512


def make_inputs(model: nn.Module, config: Any, seed: int = 0) -> dict[str, torch.Tensor]:
    """``input_ids`` (batch 2, seq 8) avoiding special token ids, plus ``attention_mask`` / decoder ids if taken."""
    accepted = forward_parameters(model)
    vocab = text_vocab_size(config)
    special = special_token_ids(config)
    plain = torch.tensor([i for i in range(vocab) if i not in special] or list(range(vocab)))
    generator = torch.Generator().manual_seed(seed)
    ids = plain[torch.randint(len(plain), (BATCH, SEQ_LEN), generator=generator)]
    inputs: dict[str, torch.Tensor] = {"input_ids": ids}
    if "attention_mask" in accepted:
        inputs["attention_mask"] = torch.ones(BATCH, SEQ_LEN, dtype=torch.long)
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in accepted:
        inputs["decoder_input_ids"] = ids.clone()
        if "decoder_attention_mask" in accepted:
            inputs["decoder_attention_mask"] = torch.ones(BATCH, SEQ_LEN, dtype=torch.long)
    return inputs
