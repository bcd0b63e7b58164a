"""Shrink a config (as the dict tree of ``config.to_dict()``) to tiny sizes, keeping its structure.

Every config in the tree (top level, ``text_config``, ``vision_config``, ``attn_config``...) is a
*frame* with its own hidden size, head count and head dim. Sizes are shrunk by family (see
:mod:`scaffold.tiny.families`) with scale factors, so relations between sizes survive:
``qk_head_dim == qk_nope_head_dim + qk_rope_head_dim``, ``hidden == heads * head_dim``,
``num_attention_heads % num_key_value_heads == 0``, ``sum(mrope_section) == head_dim / 2``.
Token ids are kept inside the new vocab, distinct ids stay distinct. A head dim that was the sum of two
others stays their sum, rounding notwithstanding (:func:`keep_sums`). transformers 5's per-layer overrides
(``per_layer_config``) are shrunk with their frame's factors and re-keyed to the kept layers.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from scaffold.tiny.families import Family, family_of
from scaffold.tiny.layers import (
    PER_LAYER_CONFIG,
    LayerPlan,
    index_lists,
    per_layer_lists,
    plan_layers,
)

SKIPPED_DICTS = (
    "rope_parameters",
    "rope_scaling",
    "quantization_config",
    "id2label",
    "label2id",
    "auto_map",
    PER_LAYER_CONFIG,
)
ROPE_KEYS = ("rope_parameters", "rope_scaling")
DROPPED_KEYS = ("quantization_config",)
HIDDEN_PREFERENCE = ("hidden_size", "d_model", "n_embd", "n_embed", "embed_dim", "dim", "model_dim")
HEADS_PREFERENCE = ("num_attention_heads", "n_head", "n_heads", "num_heads", "num_query_heads")
LAYERS_PREFERENCE = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "decoder_layers", "encoder_layers")
CUDA_ONLY_SWITCH = re.compile(r"^use_(\w+_)?(kernels?|flash_attn\w*|triton\w*|fused\w*)$")
# AutoRound leaves a Linear unquantized unless both its dims are multiples of 32.
WIDTH_MULTIPLE = 32


@dataclass(frozen=True)
class ShrinkTargets:
    """How small a strategy makes things; ``None`` keeps that size as it is."""

    name: str
    layers: int = 2
    hidden: int | None = 64
    heads: int | None = 4
    head_dim: int | None = 16
    experts: int = 4
    top_k: int = 2
    vocab: int = 512


@functools.cache
def _sampling_top_k() -> int | None:
    """``GenerationConfig().top_k``: the sampling default transformers 4.x also sets on every config."""
    from transformers import GenerationConfig

    return GenerationConfig().top_k


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scale(value: int, factor: float, multiple: int = 1) -> int:
    """``value / factor`` rounded to ``multiple``, at least ``multiple`` and never larger than ``value``."""
    if value <= 0 or factor <= 1:
        return value
    scaled = max(multiple, int(round(value / factor / multiple)) * multiple)
    return min(scaled, value)


def _first_int(config: dict[str, Any], names: tuple[str, ...]) -> int | None:
    """The first of ``names`` set to a positive int in ``config``."""
    return next((config[n] for n in names if _is_int(config.get(n)) and config[n] > 0), None)


@dataclass
class Frame:
    """The old and new core sizes of one config in the tree."""

    hidden: int | None
    hidden_new: int | None
    heads: int | None
    heads_new: int | None
    head_dim: int | None
    head_dim_new: int | None
    rotary_factor: float
    layers: LayerPlan | None

    @property
    def width_factor(self) -> float:
        return self.hidden / self.hidden_new if self.hidden and self.hidden_new else 1.0

    @property
    def heads_factor(self) -> float:
        return self.heads / self.heads_new if self.heads and self.heads_new else 1.0

    @property
    def head_dim_factor(self) -> float:
        return self.head_dim / self.head_dim_new if self.head_dim and self.head_dim_new else 1.0


def _rotary_factor(config: dict[str, Any]) -> float:
    for source in (config, *(config.get(k) for k in ROPE_KEYS)):
        if isinstance(source, dict) and isinstance(source.get("partial_rotary_factor"), (int, float)):
            return float(source["partial_rotary_factor"])
    return 1.0


def make_frame(config: dict[str, Any], targets: ShrinkTargets) -> Frame:
    """Old and new core sizes of one config: heads and head dim first, the hidden size follows them."""
    hidden = _first_int(config, HIDDEN_PREFERENCE)
    heads = _first_int(config, HEADS_PREFERENCE)
    head_dim = _first_int(config, ("head_dim",))
    if head_dim is None and hidden and heads and hidden % heads == 0:
        head_dim = hidden // heads
    heads_new = min(heads, targets.heads) if heads and targets.heads else heads
    head_dim_new = min(head_dim, targets.head_dim) if head_dim and targets.head_dim else head_dim
    hidden_new = hidden
    if hidden:
        if heads and head_dim and hidden == heads * head_dim and (targets.heads or targets.head_dim):
            hidden_new = heads_new * head_dim_new
        elif targets.hidden and heads and head_dim:
            # keep the ratio of the attention (or SSM) width to the hidden size, e.g. mamba's expand factor
            # rounded to WIDTH_MULTIPLE: AutoRound skips a Linear whose input width does not divide its group size
            width = heads_new * head_dim_new * hidden / (heads * head_dim)
            kept_ratio = max(WIDTH_MULTIPLE, int(round(width / WIDTH_MULTIPLE)) * WIDTH_MULTIPLE)
            hidden_new = kept_ratio if kept_ratio <= 2 * targets.hidden else min(hidden, targets.hidden)
        elif targets.hidden:
            hidden_new = min(hidden, targets.hidden)
        elif targets.heads and heads:
            hidden_new = _scale(hidden, heads / heads_new, 8)
    layer_count = _first_int(config, LAYERS_PREFERENCE)
    plan = plan_layers(config, layer_count, targets.layers) if layer_count and layer_count > targets.layers else None
    return Frame(hidden, hidden_new, heads, heads_new, head_dim, head_dim_new, _rotary_factor(config), plan)


class Shrinker:
    """Shrinks a config dict tree; records every change as ``{"path.to.attr": [old, new]}``."""

    def __init__(self, targets: ShrinkTargets):
        self.targets = targets
        self.changes: dict[str, list] = {}
        self.hidden_map: dict[int, int] = {}
        self.token_map: dict[int, int] = {}

    # -- tree walking -------------------------------------------------------------------------
    def shrink(self, tree: dict[str, Any]) -> dict[str, Any]:
        tree = copy.deepcopy(tree)
        frames = list(self._frames(tree, ""))
        made = [(path, config, make_frame(config, self.targets)) for path, config in frames]
        for _, _, frame in made:
            if frame.hidden and frame.hidden_new and frame.hidden != frame.hidden_new:
                self.hidden_map.setdefault(frame.hidden, frame.hidden_new)
        self._plan_token_ids(frames)
        for path, config, frame in made:
            self._shrink_frame(path, config, frame)
        for key in DROPPED_KEYS:
            if tree.get(key) is not None:
                self._record(key, "<present>", None)
                tree.pop(key)
        return tree

    def _frames(self, config: dict[str, Any], path: str):
        yield path, config
        for key, value in config.items():
            if key in SKIPPED_DICTS or not isinstance(value, dict):
                continue
            if "model_type" in value or key.endswith("config") or key in ("encoder", "decoder"):
                yield from self._frames(value, f"{path}{key}.")

    def _record(self, path: str, old: Any, new: Any) -> None:
        if old != new:
            first = self.changes.get(path, [old])[0]
            self.changes[path] = [first, new]

    # -- token ids ----------------------------------------------------------------------------
    def _plan_token_ids(self, frames: list[tuple[str, dict[str, Any]]]) -> None:
        vocab = self.targets.vocab
        ids: set[int] = set()
        for _, config in frames:
            for key, value in config.items():
                if family_of(key) is Family.TOKEN_ID:
                    values = value if isinstance(value, list) else [value]
                    ids.update(v for v in values if _is_int(v) and v >= 0)
        olds = sorted(i for i in ids if i >= vocab)
        in_range = {i for i in ids if i < vocab}
        free = (i for i in range(vocab - 1, -1, -1) if i not in in_range)
        self.token_map = {old: next(free) for old in olds}

    def _map_token(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._map_token(v) for v in value]
        return self.token_map.get(value, value) if _is_int(value) else value

    # -- one frame ----------------------------------------------------------------------------
    def _shrink_frame(self, path: str, config: dict[str, Any], frame: Frame) -> None:
        if frame.layers is not None:
            self._shrink_layer_lists(path, config, frame.layers)
        periods: dict[str, int] = {}
        original = dict(config)
        for key in list(config):
            value = config[key]
            family = family_of(key)
            if family is None:
                new = self._unclassified(key, value, frame)
            elif isinstance(value, list):
                new = [self._scalar(key, v, family, frame, original) for v in value]
            else:
                new = self._scalar(key, value, family, frame, original)
            if family is Family.PERIOD and _is_int(new):
                periods[key] = new
            if new != value:
                config[key] = new
                self._record(path + key, value, new)
        for key, new in keep_sums(original, config).items():
            config[key] = new
            self._record(path + key, original[key], new)
        self._shrink_offsets(path, config, periods)
        self._choose_unset_defaults(path, config)
        for key in list(config):
            if config[key] is True and CUDA_ONLY_SWITCH.match(key):
                config[key] = False  # the tiny model runs on CPU: fused CUDA kernels refuse to run there
                self._record(path + key, True, False)
        for key in ROPE_KEYS:
            if isinstance(config.get(key), dict):
                self._shrink_rope(f"{path}{key}.", config[key], frame)
        if "use_cache" in config or not path:
            if config.get("use_cache") is not False:
                self._record(path + "use_cache", config.get("use_cache"), False)
            config["use_cache"] = False
        if isinstance(config.get(PER_LAYER_CONFIG), dict) and config[PER_LAYER_CONFIG]:
            self._shrink_per_layer(path, config, original, frame)

    def _shrink_per_layer(self, path: str, config: dict[str, Any], original: dict[str, Any], frame: Frame) -> None:
        """Each layer's overrides shrunk like the frame's own keys, kept for the kept layers under their new index;
        recorded last, as one change, since transformers checks the indices against the (new) layer count."""
        old = config[PER_LAYER_CONFIG]
        kept = frame.layers.reindex(old) if frame.layers else old
        new = {}
        for index, overrides in kept.items():
            if not isinstance(overrides, dict):
                new[index] = overrides
                continue
            layer_frame = self._layer_frame(frame, overrides)
            effective = {**original, **overrides}
            shrunk = {key: self._override(key, value, layer_frame, effective) for key, value in overrides.items()}
            shrunk |= keep_sums(effective, {**config, **shrunk}, owned=overrides)
            new[index] = shrunk
        if new != old:
            config[PER_LAYER_CONFIG] = new
            self._record(path + PER_LAYER_CONFIG, old, new)

    def _override(self, key: str, value: Any, frame: Frame, effective: dict[str, Any]) -> Any:
        family = family_of(key)
        if family is None:
            return self._unclassified(key, value, frame)
        if isinstance(value, list):
            return [self._scalar(key, v, family, frame, effective) for v in value]
        return self._scalar(key, value, family, frame, effective)

    def _layer_frame(self, frame: Frame, overrides: dict[str, Any]) -> Frame:
        """The frame as one layer sees it: its own head count and head dim, shrunk with the frame's factors."""
        heads = _first_int(overrides, HEADS_PREFERENCE)
        head_dim = _first_int(overrides, ("head_dim",))
        sizes = {}
        if heads and frame.heads and frame.heads_new and heads != frame.heads:
            sizes |= {"heads": heads, "heads_new": _scale(heads, frame.heads_factor)}
        if head_dim and frame.head_dim and frame.head_dim_new and head_dim != frame.head_dim:
            sizes |= {"head_dim": head_dim, "head_dim_new": _scale(head_dim, frame.head_dim_factor, 2)}
        return dataclasses.replace(frame, **sizes) if sizes else frame

    def _shrink_layer_lists(self, path: str, config: dict[str, Any], plan: LayerPlan) -> None:
        indexed = index_lists(config, plan.old_count)
        for key, values in per_layer_lists(config, plan.old_count).items():
            config[key] = plan.slice(values)
            self._record(path + key, f"<{plan.old_count} entries>", config[key])
        for key, values in indexed.items():
            config[key] = plan.renumber(values)
            self._record(path + key, values, config[key])

    def _scalar(self, key: str, value: Any, family: Family, frame: Frame, config: dict) -> Any:
        """The new value of one int attribute; ``config`` holds the frame's original values."""
        t = self.targets
        if value is None and family is Family.TOP_K and key != "top_k" and _positive(config, Family.EXPERTS):
            return min(t.top_k, t.experts)  # a MoE config that leaves top-k unset cannot route
        if not _is_int(value):
            return value
        layers = frame.layers.new_count if frame.layers else None
        if family is Family.TOKEN_ID:
            return self._map_token(value)
        if family is Family.VOCAB:
            return min(value, t.vocab)
        if family is Family.HIDDEN:
            return frame.hidden_new if value == frame.hidden else _scale(value, frame.width_factor, 8)
        if family is Family.WIDTH:
            if "hidden_size" in key and value in self.hidden_map and value != frame.hidden:
                return self.hidden_map[value]  # another frame's hidden size (a projector's output, say)
            return _scale(value, frame.width_factor, WIDTH_MULTIPLE)
        if family is Family.HEADS:
            return frame.heads_new if value == frame.heads else _scale(value, frame.heads_factor)
        if family is Family.KV_HEADS:
            return self._kv_heads(value, frame)
        if family is Family.HEAD_DIM:
            return frame.head_dim_new if value == frame.head_dim else _scale(value, frame.head_dim_factor, 2)
        if family is Family.EXPERTS:
            return min(value, t.experts)
        if family is Family.SHARED_EXPERTS:
            return min(value, 1)
        if family is Family.TOP_K:
            if key == "top_k" and value == _sampling_top_k():
                return value  # transformers' own sampling default (PretrainedConfig on 4.x), not the experts' top-k
            # a bare ``top_k`` is a sampling setting unless the config has experts
            return min(value, t.top_k, t.experts) if _positive(config, Family.EXPERTS) or key != "top_k" else value
        if family is Family.EXPERT_GROUPS:
            return min(value, 2)
        if family is Family.TOPK_GROUPS:
            groups = next((config[k] for k in config if family_of(k) is Family.EXPERT_GROUPS), None)
            new_groups = min(groups, 2) if _is_int(groups) else 2
            return min(value, new_groups if _is_int(groups) and value >= groups else max(1, new_groups // 2))
        if layers is None:
            return value
        if family is Family.LAYERS:
            return min(value, layers)
        if family is Family.LAYER_SUBSET:
            if value <= 0 or value >= frame.layers.old_count:
                return min(value, layers)
            share = round(value * layers / frame.layers.old_count)
            return min(max(share, 1), max(layers - 1, 1))
        if family is Family.PERIOD:
            return min(value, layers)
        if family is Family.DENSE_PREFIX:
            return min(value, max(layers - 1, 0)) if value > 0 else value
        return value

    def _kv_heads(self, value: int, frame: Frame) -> int:
        if not frame.heads_new:
            return value
        new = frame.heads_new if value == frame.heads else max(1, round(value / frame.heads_factor))
        if value > 1:  # grouped-query stays grouped-query: two kv heads keep k/v widths a multiple of 32
            new = max(new, 2)
        new = min(new, frame.heads_new)
        while frame.heads_new % new:
            new -= 1
        return new

    def _shrink_offsets(self, path: str, config: dict[str, Any], periods: dict[str, int]) -> None:
        for key in list(config):
            value = config[key]
            if family_of(key) is not Family.OFFSET or not _is_int(value) or value <= 0:
                continue
            stem = key[: -len("_offset")]
            period = next((p for k, p in periods.items() if k.startswith(stem)), None)
            if period is None:
                continue
            new = min(value, max(period - 1, 0))
            if new != value:
                config[key] = new
                self._record(path + key, value, new)

    def _choose_unset_defaults(self, path: str, config: dict[str, Any]) -> None:
        """``default_language=None`` beside ``languages=[...]``: forwards need a choice, so take the first."""
        for key in list(config):
            if not key.startswith("default_") or config[key] is not None:
                continue
            stem = key[len("default_") :]
            options = next((config[k] for k in (stem + "s", stem) if isinstance(config.get(k), (list, tuple))), None)
            if options:
                config[key] = options[0]
                self._record(path + key, None, options[0])

    def _unclassified(self, key: str, value: Any, frame: Frame) -> Any:
        """An int size named like a width that equals some frame's old hidden size follows that frame;
        a list of ints that adds up to the hidden size (an embedding split in parts) is split again."""
        if _is_int(value) and value in self.hidden_map and value >= 128 and key.endswith(("size", "dim")):
            return self.hidden_map[value]
        if (
            isinstance(value, (list, tuple))
            and len(value) > 1
            and all(_is_int(v) and v > 0 for v in value)
            and frame.hidden_new
            and sum(value) == frame.hidden != frame.hidden_new
        ):
            return _split_proportionally(list(value), frame.hidden_new)
        return value

    # -- rotary embedding parameters ----------------------------------------------------------
    def _shrink_rope(self, path: str, rope: dict[str, Any], frame: Frame) -> None:
        if not frame.head_dim or not frame.head_dim_new or frame.head_dim == frame.head_dim_new:
            return
        old_halves = {frame.head_dim // 2, int(frame.head_dim * frame.rotary_factor) // 2}
        new_half = int(frame.head_dim_new * frame.rotary_factor) // 2
        for key, value in list(rope.items()):
            if isinstance(value, dict):
                self._shrink_rope(f"{path}{key}.", value, frame)
                continue
            if not isinstance(value, list) or not value:
                continue
            if all(_is_int(v) for v in value) and sum(value) in old_halves:
                new = _split_proportionally(value, new_half)
            elif all(isinstance(v, (int, float)) for v in value) and len(value) in old_halves:
                new = _resample(value, new_half)
            else:
                continue
            rope[key] = new
            self._record(path + key, value, new)


def keep_sums(
    old: dict[str, Any],
    new: dict[str, Any],
    owned: Collection[str] | None = None,
    kept: tuple[str, ...] = ("head_dim",),
) -> dict[str, int]:
    """Head dims of ``new`` to change so that every ``a == b + c`` among the head dims of ``old`` holds again.

    Independent rounding can break such a sum (``head_dim == qk_nope_head_dim + qk_rope_head_dim``). Relations
    are taken smallest sum first; a broken one is mended by recomputing its larger part, else its smaller part,
    else the sum, preferring keys in ``owned`` (a layer's own overrides), never one of ``kept`` (the frame's
    head dim: the hidden size and rotary factors follow it) nor a key an earlier relation settled.
    Returns ``{key: new value}`` for the keys changed.
    """
    dims = {
        k: v
        for k, v in old.items()
        if family_of(k) is Family.HEAD_DIM and _is_int(v) and v > 0 and _is_int(new.get(k)) and new[k] > 0
    }
    relations = sorted(
        (dims[total], total, *sorted(parts, key=lambda k: (-dims[k], k)))
        for total in dims
        for parts in combinations(sorted(dims), 2)
        if total not in parts and dims[parts[0]] + dims[parts[1]] == dims[total]
    )
    current = {k: new[k] for k in dims}
    settled = set(kept)
    changed: dict[str, int] = {}
    for _, total, larger, smaller in relations:
        if current[total] != current[larger] + current[smaller]:
            options = [
                (larger, current[total] - current[smaller]),
                (smaller, current[total] - current[larger]),
                (total, current[larger] + current[smaller]),
            ]
            options = [(k, v) for k, v in options if k not in settled and v > 0]
            options.sort(key=lambda option: owned is not None and option[0] not in owned)  # stable: owned first
            if not options:
                continue
            key, value = options[0]
            current[key] = changed[key] = value
        settled.update((total, larger, smaller))
    return changed


def _positive(config: dict[str, Any], family: Family) -> bool:
    """Whether ``config`` has an attribute of ``family`` set to a positive int (e.g. some experts)."""
    return any(family_of(k) is family and _is_int(v) and v > 0 for k, v in config.items())


def _split_proportionally(parts: list[int], total: int) -> list[int]:
    """Integers proportional to ``parts`` that add up to ``total``."""
    old_total = sum(parts)
    new = [max(1, math.floor(p * total / old_total)) if p else 0 for p in parts]
    i = 0
    while sum(new) != total:
        step = 1 if sum(new) < total else -1
        if new[i % len(new)] + step >= (1 if parts[i % len(parts)] else 0):
            new[i % len(new)] += step
        i += 1
    return new


def _resample(values: list, length: int) -> list:
    if length <= 0:
        return []
    return [values[min(len(values) - 1, i * len(values) // length)] for i in range(length)]


def shrink_config_dict(tree: dict[str, Any], targets: ShrinkTargets) -> tuple[dict[str, Any], dict[str, list]]:
    """Shrunk copy of ``tree`` (from ``config.to_dict()``) and the changes made."""
    shrinker = Shrinker(targets)
    return shrinker.shrink(tree), shrinker.changes
