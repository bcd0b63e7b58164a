"""The AutoRound internals this tool reads, in one place (auto-round 0.16.x).

Everything else imports AutoRound's registries and helpers through here, so a rename in a
new AutoRound release is fixed once.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from torch import nn

from scaffold.versions import package_version


def autoround_version() -> str:
    return package_version("auto-round")


@contextlib.contextmanager
def quiet_autoround():
    """Silence AutoRound's logger while probing."""
    logger = logging.getLogger("autoround")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def get_block_names(model: nn.Module, quant_vision: bool = False) -> list[list[str]]:
    """AutoRound's own block detection (``auto_round.utils.get_block_names``)."""
    from auto_round.utils import get_block_names as _get_block_names

    with quiet_autoround():
        return [list(names) for names in _get_block_names(model, quant_vision=quant_vision)]


def supported_layer_types() -> tuple[type, ...]:
    from auto_round.utils.common import SUPPORTED_LAYER_TYPES

    return tuple(SUPPORTED_LAYER_TYPES)


def inner_supported_layer_types() -> tuple[str, ...]:
    from auto_round.utils.common import INNER_SUPPORTED_LAYER_TYPES

    return tuple(INNER_SUPPORTED_LAYER_TYPES)


def is_supported_layer(module: nn.Module) -> bool:
    """Whether AutoRound's layer selection would treat ``module`` as quantizable."""
    return isinstance(module, supported_layer_types()) or type(module).__name__ in inner_supported_layer_types()


def default_shared_cache_keys() -> tuple[str, ...]:
    from auto_round.utils.common import SHARED_CACHE_KEYS

    return tuple(SHARED_CACHE_KEYS)


def special_shared_cache_keys() -> dict[str, Any]:
    from auto_round.special_model_handler import SPECIAL_SHARED_CACHE_KEYS

    return dict(SPECIAL_SHARED_CACHE_KEYS)


def builtin_replacement_model_types() -> list[str]:
    from auto_round.modeling.fused_moe.replace_modules import BUILTIN_MODULES

    return sorted(BUILTIN_MODULES)


def fused_moe_projection_names() -> frozenset[str]:
    from auto_round.modeling.fused_moe import replace_modules

    return frozenset(getattr(replace_modules, "_FUSED_MOE_PROJECTION_NAMES", ()))


def special_multimodal_block_types() -> list[str]:
    from auto_round.special_model_handler import SPECIAL_MULTIMODAL_BLOCK

    return sorted(SPECIAL_MULTIMODAL_BLOCK)


def vision_mm_keys() -> tuple[str, ...]:
    """Name fragments AutoRound reads as vision modules (skipped unless ``quant_vision``)."""
    from auto_round.utils import common

    return tuple(getattr(common, "VISION_MM_KEYS", ("vision", "visual", "image", "img")))


def predefined_ignore_rule_matches(model: object) -> bool:
    """Whether one of AutoRound's registered ignore-layer rules already matches ``model`` (first match wins)."""
    from auto_round.special_model_handler import _PRE_DEFINED_IGNORE_LAYERS

    return any(all(matcher(model) for matcher in rule.matchers) for rule in _PRE_DEFINED_IGNORE_LAYERS)


def resolve_model_type(config: Any) -> str:
    """The model type AutoRound keys a model with this ``config`` by (``auto_round.utils.model.resolve_model_type``:
    ``config.architectures`` through ``ARCHITECTURE_MODEL_TYPE_MAP``, else ``config.model_type``); '' for none."""
    from types import SimpleNamespace

    from auto_round.utils.model import resolve_model_type as _resolve

    return str(_resolve(SimpleNamespace(config=config)) or "")
