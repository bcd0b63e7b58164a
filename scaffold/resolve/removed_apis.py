"""transformers APIs that remote code written for one major version uses and another lacks.

Each entry was checked against the installed sources of transformers 4.45.2, 4.53.3, 4.55.4,
4.57.6 and 5.24.0; ``has_it`` is the range of versions that provide it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class RemovedApi:
    """One module, name or attribute and the transformers versions that have it."""

    kind: str  # "module" | "name" (importable from a module) | "attribute" (of a class) | "config"
    owner: str  # module path, class name, or "config" for PretrainedConfig defaults
    name: str  # attribute / imported name; "" for a whole module
    has_it: str  # pip specifier of the versions that provide it, e.g. "<5" or "<=4.53"; "" when not in the table
    instead: str = ""  # what current code uses

    @property
    def api(self) -> str:
        if self.kind == "module":
            return self.owner
        if self.kind == "config":
            return f"config.{self.name} (a PretrainedConfig default)"
        return f"{self.owner}.{self.name}"


_V5_CONFIG_DEFAULTS = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
    "is_decoder",
    "add_cross_attention",
    "tie_encoder_decoder",
    "torchscript",
    "pruned_heads",
    "tokenizer_class",
    "max_length",
    "num_beams",
    "do_sample",
    "temperature",
    "top_k",
    "output_scores",
    "return_dict_in_generate",
)
_FROM_UTILS = "import it from transformers.utils"
_CONFIG_FIX = "set it in the model's configuration __init__ (e.g. `self.{name} = kwargs.pop('{name}', None)`)"

REMOVED_APIS: tuple[RemovedApi, ...] = (
    RemovedApi(
        "module",
        "transformers.modeling_attn_mask_utils",
        "",
        "<5",
        "build the causal mask in the model (or with transformers.masking_utils.create_causal_mask)",
    ),
    RemovedApi("attribute", "DynamicCache", "get_usable_length", "<=4.53", "use cache.get_seq_length(layer_idx)"),
    RemovedApi("attribute", "DynamicCache", "seen_tokens", "<=4.53", "use cache.get_seq_length()"),
    RemovedApi("attribute", "DynamicCache", "key_cache", "<4.56", "use cache.layers[idx].keys"),
    RemovedApi("attribute", "DynamicCache", "value_cache", "<4.56", "use cache.layers[idx].values"),
    RemovedApi("attribute", "DynamicCache", "from_legacy_cache", "<5", "build DynamicCache() and call update()"),
    RemovedApi("attribute", "DynamicCache", "to_legacy_cache", "<5", "keep the Cache object"),
    RemovedApi("attribute", "DynamicCache", "get_max_length", "<=4.45 or >=5", "use cache.get_max_cache_shape()"),
    RemovedApi("name", "transformers.utils", "is_torch_fx_available", "<5", "drop the torch.fx branch"),
    RemovedApi("name", "transformers.modeling_utils", "is_flash_attn_2_available", "<5", _FROM_UTILS),
    RemovedApi("name", "transformers.modeling_utils", "is_torch_fx_proxy", "<5", "drop the torch.fx branch"),
    RemovedApi("name", "transformers.modeling_utils", "is_torchdynamo_compiling", "<5", _FROM_UTILS),
    RemovedApi("name", "transformers.pytorch_utils", "find_pruneable_heads_and_indices", "<5", "drop head pruning"),
    *(RemovedApi("config", "config", name, "<5", _CONFIG_FIX.format(name=name)) for name in _V5_CONFIG_DEFAULTS),
)

_NO_MODULE = re.compile(r"No module named '(transformers\.[\w.]+)'")
_NO_NAME = re.compile(r"cannot import name '(\w+)' from '(transformers[\w.]*)'")
_NO_ATTRIBUTE = re.compile(r"'(\w+)' object has no attribute '(\w+)'|type object '(\w+)' has no attribute '(\w+)'")


def find_removed(exc: BaseException) -> RemovedApi | None:
    """The table entry (or a generic one for any transformers module) that ``exc`` reports missing."""
    message = str(exc)
    if isinstance(exc, ImportError):
        match = _NO_MODULE.search(message)
        if match:
            return _lookup("module", match.group(1), "") or RemovedApi("module", match.group(1), "", "")
        match = _NO_NAME.search(message)
        if match:
            name, module = match.groups()
            return _lookup("name", module, name) or RemovedApi("name", module, name, "")
    if isinstance(exc, AttributeError):
        match = _NO_ATTRIBUTE.search(message)
        if match:
            owner, name = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
            if owner.endswith("Config"):
                return _lookup("config", "config", name)
            return _lookup("attribute", owner, name)
    return None


def _lookup(kind: str, owner: str, name: str) -> RemovedApi | None:
    for entry in REMOVED_APIS:
        if entry.kind == kind and entry.owner == owner and entry.name == name:
            return entry
    return None
