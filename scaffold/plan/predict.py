"""What AutoRound SHOULD quantize once an adaptation is in place: the number generated tests check exactly.

:func:`expected_packing` is that number for a model: ``new-arch`` records it on the tiny instance (``PREDICTED``),
the test kit recomputes it on a real checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from scaffold.inspection.coverage import predefined_ignore_layers, scan_model
from scaffold.inspection.findings import Mode
from scaffold.inspection.linear_weights import LinearWeight, matches_any, shape_divisible
from scaffold.inspection.moe_support import KNOWN_SPLITS, expert_matrices
from scaffold.inspection.stacks import BlockStack, stack_members


@dataclass
class StackPrediction:
    stack: str
    params: int = 0  # weight parameters of the layers that should be packed
    layers: int = 0  # nn.Linear layers after unfusing (one per expert matrix)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> parameters left in float


@dataclass
class Prediction:
    group_size: int
    ignore_patterns: list[str]
    stacks: list[StackPrediction]

    @property
    def params(self) -> int:
        return sum(s.params for s in self.stacks)

    @property
    def layers(self) -> int:
        return sum(s.layers for s in self.stacks)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = self.params
        data["layers"] = self.layers
        return data


def _expert_names(weight: LinearWeight, roles: dict[str, str] | None, experts: int) -> list[str]:
    if roles and roles.get(weight.attr) == "gate_up":
        projections: tuple[str, ...] = ("gate_proj", "up_proj")
    else:
        projections = KNOWN_SPLITS.get(weight.attr, (weight.attr,))
    return [f"{weight.path}.{e}.{proj}" for e in range(experts) for proj in projections]


def _add(pred: StackPrediction, reason: str | None, params: int, layers: int) -> None:
    if reason is None:
        pred.params += params
        pred.layers += layers
    else:
        pred.skipped[reason] = pred.skipped.get(reason, 0) + params


def _predict_weight(
    pred: StackPrediction,
    weight: LinearWeight,
    group_size: int,
    patterns: list[str],
    roles: dict[str, str] | None,
    pads_groups: bool = True,
    layout: dict[str, Any] | None = None,
) -> None:
    if weight.kind == "experts":
        in_f, out_f, experts = weight.in_features, weight.out_features, weight.num_experts
        if layout:  # the probed storage and the experts the replacement builds (identity experts have none)
            _, d1, d2 = weight.shape
            in_f, out_f = (d1, d2) if layout.get("transposed") else (d2, d1)
            experts = min(experts, int(layout.get("experts") or experts))
        count, in_f, out_f = expert_matrices(weight.attr, in_f, out_f, experts, roles)
        numel = experts * weight.shape[1] * weight.shape[2]
        per_matrix = in_f * out_f
        if not shape_divisible(in_f, out_f, group_size, pads_groups):
            _add(pred, "non-divisible", numel, count)
            return
        for name in _expert_names(weight, roles, experts):
            _add(pred, "ignored" if matches_any(name, patterns) else None, per_matrix, 1)
        return
    if matches_any(weight.path, patterns):
        _add(pred, "ignored", weight.numel, 1)
    elif not shape_divisible(weight.in_features, weight.out_features, group_size, pads_groups):
        _add(pred, "non-divisible", weight.numel, 1)
    else:
        _add(pred, None, weight.numel, 1)


def predict_after_fix(
    model: nn.Module,
    block_stacks: Sequence[BlockStack | dict[str, Any] | str],
    group_size: int,
    ignore_patterns: Sequence[str] = (),
    roles: dict[str, dict[str, str]] | None = None,
    pads_groups: bool = True,
    layouts: dict[str, dict[str, Any]] | None = None,
) -> Prediction:
    """Parameters and layers per stack that an adapted AutoRound should pack.

    Every linear-like weight inside the given stacks counts (custom linear classes included, fused
    experts as one matrix per expert and projection), minus layers matching ``ignore_patterns``
    (AutoRound's substring rule), shapes AutoRound skips (a dimension not a multiple of 32; with
    ``pads_groups=False``, for nv_fp/mx_fp schemes, also an input dimension ``group_size`` does not divide), and routers
    of a custom class (they score experts and stay in float). ``roles`` maps an experts class name to
    the probed ``{param: role}`` so unknown fused names split correctly.
    """
    scan = scan_model(model, cached=False)  # the model may have changed since it was last scanned
    patterns = list(ignore_patterns)
    paths = [s if isinstance(s, str) else s.path if isinstance(s, BlockStack) else s["path"] for s in block_stacks]
    preds = [StackPrediction(path) for path in paths]
    members = stack_members(model, paths)
    for weight in scan.weights:
        for pred in preds:
            if any(weight.path.startswith(block + ".") for block in members[pred.stack]):
                if weight.kind == "custom" and weight.name in scan.routers:
                    _add(pred, "router", weight.numel, 1)
                else:
                    _predict_weight(
                        pred,
                        weight,
                        group_size,
                        patterns,
                        (roles or {}).get(weight.cls),
                        pads_groups,
                        (layouts or {}).get(weight.cls),
                    )
                break
    return Prediction(group_size=group_size, ignore_patterns=patterns, stacks=preds)


def stack_block_names(model: nn.Module, stacks: list[str], exclude_classes: Any = ()) -> list[list[str]]:
    """The blocks of each stack; those of ``exclude_classes`` (MTP layers the block function leaves out) dropped."""
    members = stack_members(model, stacks)
    excluded = set(exclude_classes)
    return [[b for b in members[path] if type(model.get_submodule(b)).__name__ not in excluded] for path in stacks]


def ignore_patterns(model: nn.Module, test_data: dict[str, Any]) -> list[str]:
    """The layer names AutoRound leaves in float on ``model`` once adapted (generated rule, else its own rules).

    ``test_data`` is the generated ``TEST_DATA`` (keyed by mode), as in :func:`expected_packing`.
    """
    ignore = test_data.get(Mode.IGNORE_LAYERS.value)
    if not ignore:
        return predefined_ignore_layers(model)
    suffixes = tuple(ignore["router_suffixes"])
    routers = [name for name, _ in model.named_modules() if suffixes and name.endswith(suffixes)]
    return [*ignore["patterns"], *routers]


def expected_packing(
    model: nn.Module,
    stacks: list[str],
    group_size: int,
    test_data: dict[str, Any],
    roles: dict[str, dict[str, str]],
    layouts: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Layers and weight parameters the adapted AutoRound must pack in ``stacks`` of ``model``, with their share."""
    from scaffold.measure.quantize import block_weights

    prediction = predict_after_fix(model, stacks, group_size, ignore_patterns(model, test_data), roles, layouts=layouts)
    blocks = test_data.get(Mode.BLOCK_DETECTION.value, {})
    excluded = list(blocks.get("exclude_classes", []))  # left out of the blocks: not block weights
    total = sum(block_weights(model, stack_block_names(model, stacks, excluded)).values())
    return {
        "stacks": stacks,
        **({"exclude_classes": excluded} if excluded else {}),
        "layers": prediction.layers,
        "params": prediction.params,
        "block_share": round(prediction.params / total, 6) if total else 0.0,
        "group_size": group_size,
        "roles": roles,
        **({"layouts": layouts} if layouts else {}),
    }
