"""AutoRound adaptation for `bloom` (BloomForCausalLM), applied at run time.

Import this module before creating ``AutoRound(...)``: it registers the changes listed in
REPORT.md with the installed auto-round. ``autoround/`` and ``edits.json`` next to it hold
the same changes for an AutoRound checkout.

Written and verified for auto-round 0.16.1, transformers 5.24.0
and torch 2.13.0 (autoround-scaffold 0.2.0).
"""

from __future__ import annotations

import sys
import warnings
from importlib.metadata import version

import auto_round.special_model_handler as ar_special_model_handler

WRITTEN_FOR = {"auto_round": "0.16.1", "transformers": "5.24.0"}
MODEL_TYPE = "bloom"

_INSTALLED = {"auto_round": version("auto-round"), "transformers": version("transformers")}
if _INSTALLED != WRITTEN_FOR:
    warnings.warn(f"{__name__} was verified with {WRITTEN_FOR}, not {_INSTALLED}: run `scaffold verify`", stacklevel=2)


def _bloom_alibi(attention_mask, hidden_states, num_heads):
    """ALiBi bias rebuilt from a block's own mask and hidden states, laid out as the block expects."""
    import math

    import torch

    batch, length = hidden_states.shape[:2]
    if attention_mask is None:
        keep = torch.ones(batch, length, device=hidden_states.device)
    else:
        allowed = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
        keep = (allowed.any(dim=-2).reshape(batch, -1) if allowed.dim() == 4 else allowed).float()
    closest = 2 ** math.floor(math.log2(num_heads))
    base = 2 ** (-(2 ** -(math.log2(closest) - 3)))
    slopes = base ** torch.arange(1, closest + 1, dtype=torch.float32)
    if closest != num_heads:
        extra_base = 2 ** (-(2 ** -(math.log2(2 * closest) - 3)))
        extra = min(closest, num_heads - closest)
        slopes = torch.cat([slopes, extra_base ** torch.arange(1, 1 + 2 * extra, 2, dtype=torch.float32)])
    positions = ((keep.cumsum(dim=-1) - 1) * keep)[:, None, :]
    alibi = slopes.to(keep.device)[None, :, None] * positions
    return alibi.reshape(batch * num_heads, 1, -1).to(hidden_states.dtype)


def _bloom_drop_alibi(module, args, kwargs):
    """Keep ALiBi out of the block inputs AutoRound caches: its replay reshapes them for another layout."""
    kwargs.pop("alibi", None)
    return args, kwargs


def _bloom_block_forward(block, num_heads, hidden_states, *args, **kwargs):
    """The block's own forward with an ALiBi bias rebuilt from its inputs."""
    mask = kwargs.get("attention_mask")
    kwargs["alibi"] = _bloom_alibi(mask, hidden_states, num_heads)
    return type(block).forward(block, hidden_states, *args, **kwargs)


def _patch_bloom_block_replay(model):
    """Make the blocks of a stack rebuild their ALiBi bias so AutoRound can replay them one by one.

    Stack: ``transformer.h``.

    auto-round's input cache and ``block_forward`` reshape an ``alibi`` input for an older layout and
    assume the calibration forward ran with ``batch_size`` samples, which mixes up heads and samples.
    Seen on the tiny instance: RuntimeError: The expanded size of the tensor (8) must match the existing siz...
    """
    from functools import partial

    num_heads = model.config.num_attention_heads
    for block in model.get_submodule("transformer.h"):
        if getattr(block, "_scaffold_replay_patched", False):
            continue
        block.register_forward_pre_hook(_bloom_drop_alibi, with_kwargs=True)
        block.forward = partial(_bloom_block_forward, block, num_heads)
        block._scaffold_replay_patched = True
    return model


def _handle_bloom_special_model(model, model_type):
    """The ``model_type == "bloom"`` branch of ``_handle_special_model``."""
    _patch_bloom_block_replay(model)
    return model


def _rebind(old, new):
    """Point every global and class attribute of the loaded ``auto_round`` modules that holds ``old`` at ``new``."""
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] != "auto_round":
            continue
        for key, value in list(getattr(module, "__dict__", {}).items()):
            if value is old:
                setattr(module, key, new)
            elif isinstance(value, type) and value.__module__ == module_name:
                for attribute, held in list(vars(value).items()):
                    if held is old:
                        setattr(value, attribute, new)


def _add_model_type_branch(model_type, branch):
    """Run ``branch(model, model_type)`` at the end of AutoRound's ``_handle_special_model`` for ``model_type``."""
    original = ar_special_model_handler._handle_special_model

    def _handle_special_model(model):
        model = original(model)
        if ar_special_model_handler.resolve_model_type(model) == model_type:
            model = branch(model, model_type)
        return model

    _rebind(original, _handle_special_model)


# Registrations: the same edits as edits.json, applied to the installed auto-round.
_add_model_type_branch("bloom", _handle_bloom_special_model)
