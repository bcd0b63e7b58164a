"""Keep per-layer config lists consistent when the number of layers shrinks.

Per-layer lists (``layer_types``, per-layer head counts, ...) are sliced to the kept layers and
layer-index lists (``mlp_only_layers``, ``full_attn_idxs``, ...) are renumbered, and so are the keys of
transformers 5's ``per_layer_config`` (per-layer overrides keyed by layer index). The kept layers are
chosen so that every distinct per-layer value survives when ``layers`` allows it: a hybrid model shrunk
to two layers keeps one attention and one recurrent layer, not two of the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scaffold.tiny.families import is_layer_index_list_name

PER_LAYER_CONFIG = "per_layer_config"


@dataclass(frozen=True)
class LayerPlan:
    """Which of the ``old_count`` layers survive, in order."""

    old_count: int
    kept: tuple[int, ...]

    @property
    def new_count(self) -> int:
        return len(self.kept)

    def slice(self, values: list) -> list:
        return [values[i] for i in self.kept]

    def renumber(self, indices: list[int]) -> list[int]:
        position = {old: new for new, old in enumerate(self.kept)}
        return [position[i] for i in indices if i in position]

    def reindex(self, overrides: dict) -> dict:
        """``per_layer_config`` keeping the kept layers' overrides under their new index, keys written alike."""
        parsed = layer_overrides(overrides)
        position = {old: new for new, old in enumerate(self.kept)}
        kept = {position[i]: value for i, value in parsed.items() if i in position}
        return write_layer_keys(kept, padded=any(isinstance(k, str) for k in overrides))


def layer_overrides(overrides: Any) -> dict[int, dict]:
    """``per_layer_config`` (keys ``"05"``, ``"5"`` or ``5``) as ``{layer index: overrides}``."""
    if not isinstance(overrides, dict):
        return {}
    parsed = {}
    for key, value in overrides.items():
        text = str(key)
        if isinstance(value, dict) and not isinstance(key, bool) and text.isdigit():
            parsed[int(text)] = value
    return parsed


def write_layer_keys(overrides: dict[int, dict], *, padded: bool) -> dict:
    """Keys as ``to_dict()`` writes them (strings zero-padded to the widest index), or plain ints."""
    if not padded:
        return dict(sorted(overrides.items()))
    digits = len(str(max(overrides))) if overrides else 1
    return {str(i).zfill(digits): value for i, value in sorted(overrides.items())}


def per_layer_lists(config: dict[str, Any], old_count: int) -> dict[str, list]:
    """Lists in ``config`` with one entry per layer."""
    return {k: v for k, v in config.items() if isinstance(v, list) and len(v) == old_count and old_count > 1}


def index_lists(config: dict[str, Any], old_count: int) -> dict[str, list[int]]:
    """Lists in ``config`` that hold layer indices (not one entry per layer)."""
    found = {}
    for key, value in config.items():
        if not isinstance(value, list) or not value or len(value) == old_count or not is_layer_index_list_name(key):
            continue
        if all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < old_count for i in value):
            found[key] = value
    return found


def plan_layers(config: dict[str, Any], old_count: int, new_count: int) -> LayerPlan:
    """Choose ``new_count`` layers of ``old_count`` that cover as many distinct layer kinds as possible."""
    new_count = max(1, min(new_count, old_count))
    lists = per_layer_lists(config, old_count)
    indexed = {k: set(v) for k, v in index_lists(config, old_count).items()}
    overridden = {i: repr(sorted(v.items())) for i, v in layer_overrides(config.get(PER_LAYER_CONFIG)).items()}

    def features(i: int) -> set[tuple]:
        found = {(k, repr(v[i])) for k, v in lists.items()} | {(k, i in s) for k, s in indexed.items()}
        return found | {(PER_LAYER_CONFIG, overridden.get(i))} if overridden else found

    # Greedy cover: each next layer is the earliest one adding the most (attribute, value) pairs not yet kept.
    kept: list[int] = []
    covered: set[tuple] = set()
    while len(kept) < new_count:
        gains = [(len(features(i) - covered), -i) for i in range(old_count) if i not in kept]
        gain, best = max(gains)
        if gain == 0:
            break
        kept.append(-best)
        covered |= features(-best)

    # Fill up with the earliest layer of the least represented kind, so extra layers repeat every kind evenly.
    def kind(i: int) -> frozenset:
        return frozenset(features(i))

    while len(kept) < new_count:
        counts = {kind(i): sum(kind(j) == kind(i) for j in kept) for i in range(old_count)}
        _, best = min((counts[kind(i)], i) for i in range(old_count) if i not in kept)
        kept.append(best)
    return LayerPlan(old_count=old_count, kept=tuple(sorted(kept)))
