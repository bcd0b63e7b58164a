"""Map the keys an export was saved under back to the model's own parameter names.

transformers 5 saves some models under their checkpoint's original (legacy) key names: mixtral's experts as
``model.layers.N.block_sparse_moe.experts.E...``, exaone as ``transformer.h.N...``. :func:`key_mapper` takes
the rules ``from_pretrained`` applies when it loads such a checkpoint into ``model`` (transformers 5's
conversion mapping; on 4.x the model's ``_fix_state_dict_key_on_load`` and ``_checkpoint_conversion_mapping``),
so a packed ``qweight`` is counted for the in-memory parameter it came from, whatever name it was saved under.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


@dataclass
class KeyMapper:
    """Checkpoint key -> model key, in the load direction; the identity when the model has no rules."""

    rename: Callable[[str], str] | None = None

    def model_key(self, checkpoint_key: str) -> str:
        if self.rename is None:
            return checkpoint_key
        try:
            return self.rename(checkpoint_key)
        except Exception:  # noqa: BLE001 - a rule that cannot apply leaves the key as saved
            return checkpoint_key

    def module_name(self, checkpoint_module: str) -> str:
        """The model's name for a module saved as ``checkpoint_module`` (its ``.weight`` key, mapped)."""
        key = self.model_key(f"{checkpoint_module}.weight")
        return key[: -len(".weight")] if key.endswith(".weight") else key


def key_mapper(model: nn.Module, model_keys: Mapping[str, Any] | None = None) -> KeyMapper:
    """The load-direction key rules of ``model`` (``model_keys``: its parameter names, for base-prefix fixes)."""
    keys = model_keys if model_keys is not None else dict(model.named_parameters())
    try:
        return _transformers5_mapper(model, keys)
    except ImportError:
        return _transformers4_mapper(model)


def _transformers5_mapper(model: nn.Module, keys: Mapping[str, Any]) -> KeyMapper:
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    try:
        transforms = get_model_conversion_mapping(model)
    except Exception:  # noqa: BLE001 - not a PreTrainedModel, or a model transformers cannot describe
        return KeyMapper()
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    if not renamings and not converters:
        return KeyMapper()
    prefix = getattr(model, "base_model_prefix", None) or None

    def rename(key: str) -> str:
        return rename_source_key(key, renamings, converters, prefix, keys)[0]

    return KeyMapper(rename)


def _transformers4_mapper(model: nn.Module) -> KeyMapper:
    fix = getattr(type(model), "_fix_state_dict_key_on_load", None)  # a staticmethod: no reference to the model
    mapping: dict[str, str] = dict(getattr(model, "_checkpoint_conversion_mapping", None) or {})

    def rename(key: str) -> str:
        if fix is not None:
            key = fix(key)[0]
        for pattern, replacement in mapping.items():
            key, count = re.subn(pattern, replacement, key)
            if count:
                break
        return key

    return KeyMapper(rename if fix is not None or mapping else None)
