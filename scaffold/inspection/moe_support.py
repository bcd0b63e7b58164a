"""What AutoRound does with a fused (3-D) experts module today, read from its own code."""

from __future__ import annotations

from torch import nn

from scaffold.versions import transformers_major

KNOWN_SPLITS = {"gate_up_proj": ("gate_proj", "up_proj")}  # AutoRound's KNOWN_PROJECTION_PATTERNS split_into


def has_experts_interface() -> bool:
    """Whether this transformers has the experts interface (``use_experts_implementation``, transformers >= 5)."""
    try:
        from transformers.integrations.moe import use_experts_implementation  # noqa: F401
    except ImportError:
        return False
    return True


def experts_interface(module: nn.Module) -> bool:
    """Whether ``module``'s class forward was wrapped by transformers' ``use_experts_implementation``.

    The decorator replaces ``forward`` with a ``functools.wraps`` closure defined in
    ``transformers/integrations/moe.py``: it has ``__wrapped__`` and that file as its code's file.
    """
    forward = getattr(type(module), "forward", None)
    code = getattr(forward, "__code__", None)
    if forward is None or not hasattr(forward, "__wrapped__") or code is None:
        return False
    return code.co_filename.replace("\\", "/").endswith("integrations/moe.py")


def autoround_unfuses(module: nn.Module, path: str) -> bool:
    """Whether ``prepare_model_for_moe_quantization`` would unfuse ``module`` into per-expert ``nn.Linear``.

    Mirrors ``_unfuse_experts_weights_inplace``: AutoRound's projection detection (known names, or any
    3-D parameter on an ``*expert*`` path) and its decorator check (``forward.__wrapped__``), and only on
    transformers >= 5 where AutoRound calls it at all.
    """
    if transformers_major() < 5 or not has_experts_interface():
        return False
    try:
        from auto_round.modeling.fused_moe.moe_experts_interface import (
            _detect_expert_projections,
            _experts_supports_decorator,
        )
    except ImportError:
        return False
    return bool(_detect_expert_projections(module, module_name=path)) and _experts_supports_decorator(module)


def builtin_replacement(model_type: str) -> bool:
    """Whether AutoRound's ``BUILTIN_MODULES`` ships a module replacement for ``model_type``."""
    from scaffold.autoround_api import builtin_replacement_model_types

    return model_type in builtin_replacement_model_types()


def split_count(param_name: str, roles: dict[str, str] | None = None) -> int:
    """How many per-expert matrices one 3-D parameter becomes once unfused (gate_up -> gate + up)."""
    if roles and param_name in roles:
        return 2 if roles[param_name] == "gate_up" else 1
    return len(KNOWN_SPLITS.get(param_name, (param_name,)))


def expert_matrices(param_name: str, in_features: int, out_features: int, num_experts: int, roles=None):
    """``(count, in_features, out_features)`` of the per-expert ``nn.Linear`` one 3-D parameter becomes."""
    split = split_count(param_name, roles)
    return num_experts * split, in_features, out_features // split
