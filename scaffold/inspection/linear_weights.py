"""Find every linear-like weight in a module tree (2-D projections and 3-D fused experts).

One pass over ``named_modules`` reading each module's own ``_parameters``: it works on the
meta skeleton of any size and never touches tensor data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from torch import nn

# 2-D parameters that are lookup tables, scales or positions, never a projection.
_NOT_PROJECTION = re.compile(r"embed|pos|bias|norm|scale|sink|table|cache|freq|log|^[A-Z]$", re.IGNORECASE)
# 3-D parameters AutoRound itself never treats as experts.
_NON_EXPERT_3D = frozenset({"scale_shift_table"})
_EXPERT_COUNT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
# AutoRound's known fused projection names (``KNOWN_PROJECTION_PATTERNS``).
_KNOWN_EXPERT_NAMES = frozenset(
    {"gate_up_proj", "gate_proj", "up_proj", "down_proj", "w1", "w2", "w3", "v1", "w1_proj", "w2_proj"}
)


@lru_cache(maxsize=1)
def _autoround_layer_types() -> tuple[tuple[type, ...], frozenset[str]]:
    from scaffold.autoround_api import inner_supported_layer_types, supported_layer_types

    return supported_layer_types(), frozenset(inner_supported_layer_types())


def autoround_selects(module: nn.Module) -> bool:
    """AutoRound's own test (``get_layer_names_in_block``): the exact type, not a subclass, or an inner class name."""
    types, names = _autoround_layer_types()
    return type(module) in types or type(module).__name__ in names


def _is_lookup(module: nn.Module) -> bool:
    return isinstance(module, (nn.Embedding, nn.EmbeddingBag)) or "embedding" in type(module).__name__.lower()


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd)


def _is_conv1d_transformers(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D"


@dataclass(frozen=True)
class LinearWeight:
    """One linear-like weight: a 2-D projection (``kind`` linear/custom) or a 3-D experts tensor."""

    path: str  # module path
    attr: str  # parameter name on that module
    cls: str  # module class name
    shape: tuple[int, ...]
    kind: str  # "linear" (AutoRound selects it), "custom" (a class AutoRound skips), "experts" (3-D)
    in_features: int  # for experts: of one expert matrix (AutoRound's transposition rule)
    out_features: int

    @property
    def name(self) -> str:
        return f"{self.path}.{self.attr}" if self.path else self.attr

    @property
    def numel(self) -> int:
        total = 1
        for dim in self.shape:
            total *= dim
        return total

    @property
    def num_experts(self) -> int:
        return self.shape[0] if self.kind == "experts" else 1


def experts_transposed(module: nn.Module) -> bool:
    """Whether ``module``'s 3-D weights are stored [E, in, out], decided the way AutoRound decides it.

    AutoRound reads ``is_transposed`` (set by transformers' experts decorator) and otherwise assumes the
    first 3-D parameter maps hidden to a larger intermediate size (``dim1 < dim2`` means transposed).
    """
    flag = getattr(module, "is_transposed", None)
    if isinstance(flag, bool):
        return flag
    for name, param in module._parameters.items():
        if param is not None and param.dim() == 3 and name not in _NON_EXPERT_3D:
            return param.shape[1] < param.shape[2]
    return False


def _is_experts_path(path: str) -> bool:
    """AutoRound's ``_module_name_is_experts_container``: a path token containing "expert" or equal to "moe"."""
    return any("expert" in token or token == "moe" for token in path.lower().split("."))


def _is_expert_param(path: str, name: str, param: nn.Parameter, expert_counts: set[int]) -> bool:
    """A 3-D parameter is fused experts when named like one, on an experts path, or sized by the expert count
    (a single fused expert, e.g. one shared expert in a tiny model, needs the name or the path)."""
    if name in _NON_EXPERT_3D:
        return False
    named = name in _KNOWN_EXPERT_NAMES or _is_experts_path(path)
    return named if param.shape[0] < 2 else named or int(param.shape[0]) in expert_counts


def _module_weights(path: str, module: nn.Module, expert_counts: set[int]) -> list[LinearWeight]:
    params = [(n, p) for n, p in module._parameters.items() if p is not None and not n.startswith("_")]
    if not params or _is_lookup(module):
        return []
    cls = type(module).__name__
    out: list[LinearWeight] = []
    three_d = [(n, p) for n, p in params if p.dim() == 3 and _is_expert_param(path, n, p, expert_counts)]
    if three_d and not _is_conv(module):
        transposed = experts_transposed(module)
        for name, param in three_d:
            _, d1, d2 = param.shape
            in_f, out_f = (d1, d2) if transposed else (d2, d1)
            out.append(LinearWeight(path, name, cls, tuple(param.shape), "experts", int(in_f), int(out_f)))
    if _is_conv(module):
        return out
    for name, param in params:
        if param.dim() != 2:
            continue
        selected = autoround_selects(module)
        if not selected and _NOT_PROJECTION.search(name):
            continue
        rows, cols = int(param.shape[0]), int(param.shape[1])
        in_f, out_f = (rows, cols) if _is_conv1d_transformers(module) else (cols, rows)
        kind = "linear" if selected and name == "weight" else "custom"
        out.append(LinearWeight(path, name, cls, (rows, cols), kind, in_f, out_f))
    return out


def linear_weights(model: nn.Module) -> list[LinearWeight]:
    """Every linear-like weight of ``model`` in registration order (embeddings, norms, convolutions excluded)."""
    expert_counts = config_expert_counts(getattr(model, "config", None))
    found: list[LinearWeight] = []
    for path, module in model.named_modules():
        found.extend(_module_weights(path, module, expert_counts))
    return found


def config_expert_counts(config: object) -> set[int]:
    """Expert counts named by ``config`` (and its ``text_config``)."""
    counts: set[int] = set()
    for cfg in (config, getattr(config, "text_config", None)):
        for key in _EXPERT_COUNT_KEYS:
            value = getattr(cfg, key, None) if cfg is not None else None
            if isinstance(value, int) and value > 1:
                counts.add(value)
    return counts


def experts_modules(model: nn.Module, weights: list[LinearWeight]) -> dict[str, int]:
    """Paths of experts containers and their expert count: 3-D owners and ``*experts`` module lists."""
    found: dict[str, int] = {w.path: w.num_experts for w in weights if w.kind == "experts"}
    for path, module in model.named_modules():
        if isinstance(module, (nn.ModuleList, nn.ModuleDict)) and path.rsplit(".", 1)[-1].endswith("experts"):
            if len(module) > 1:
                found.setdefault(path, len(module))
    return found


def router_weights(model: nn.Module, weights: list[LinearWeight]) -> list[LinearWeight]:
    """2-D weights that score experts, beside an experts module in one MoE block: output size = expert count,
    or a module named ``router``/``gate`` or of a ``*Router*`` class (scores for extra, e.g. zero, experts)."""
    experts = experts_modules(model, weights)
    by_parent: dict[str, set[int]] = {}
    for path, count in experts.items():
        by_parent.setdefault(path.rsplit(".", 1)[0] if "." in path else "", set()).add(count)
    routers = []
    for weight in weights:
        if weight.kind == "experts" or any(weight.path.startswith(e + ".") for e in experts):
            continue
        parent = weight.path.rsplit(".", 1)[0] if "." in weight.path else ""
        named = "router" in weight.cls.lower() or weight.path.rsplit(".", 1)[-1] in ("router", "gate")
        if parent in by_parent and (weight.out_features in by_parent[parent] or named):
            routers.append(weight)
    return routers


def matches_any(name: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """AutoRound's ignore-layer test (``get_fp_layer_names``): exact name or substring."""
    return any(p and (p == name or p in name) for p in patterns)


# AutoRound skips int weight-only layers whose weight has a dimension not divisible by 32
# (``_check_divisible_by_32``). An input dimension the group size does not divide is padded
# (``reshape_pad_tensor_by_group_size``) for int schemes; only nv_fp/mx_fp schemes skip it.
SHAPE_MULTIPLE = 32


def shape_divisible(in_features: int, out_features: int, group_size: int, pads_groups: bool = True) -> bool:
    """Whether AutoRound quantizes a ``[out, in]`` matrix (int schemes pad a last partial group)."""
    if not pads_groups and group_size > 0 and in_features % group_size:
        return False
    return not (in_features % SHAPE_MULTIPLE or out_features % SHAPE_MULTIPLE)
