"""Per block stack: how many linear-like weight parameters AutoRound would quantize today, and where the rest sits."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from torch import nn

from scaffold import autoround_api
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import StackCoverage
from scaffold.inspection.linear_weights import (
    LinearWeight,
    linear_weights,
    matches_any,
    router_weights,
    shape_divisible,
)
from scaffold.inspection.moe_support import autoround_unfuses, builtin_replacement, expert_matrices
from scaffold.inspection.stacks import BlockStack, stack_of
from scaffold.inspection.stacks import block_stacks as find_stacks

__all__ = ["BlockStack", "block_stacks", "compute_coverage", "coverage_of", "ModelScan", "scan_model"]

OUTSIDE_BLOCKS = "outside autoround blocks"
CUSTOM_CLASS = "custom linear class"
FUSED_EXPERTS = "fused experts"
ROUTER = "router"
IGNORED = "ignored by autoround"
NON_DIVISIBLE = "non-divisible shape"


@dataclass
class ModelScan:
    """Linear-like weights, stacks and routers of one model, computed once and shared by the detectors."""

    weights: list[LinearWeight]
    stacks: list[BlockStack]
    routers: set[str] = field(default_factory=set)  # weight names (path.attr)


_SCANS: weakref.WeakKeyDictionary[nn.Module, ModelScan] = weakref.WeakKeyDictionary()


def scan_model(model: nn.Module, cached: bool = True) -> ModelScan:
    """Scan ``model`` (cached per model object so detectors share one scan; ``cached=False`` rescans)."""
    scan = _SCANS.get(model) if cached else None
    if scan is None:
        weights = linear_weights(model)
        routers = {w.name for w in router_weights(model, weights)}
        scan = _SCANS[model] = ModelScan(weights, find_stacks(model, weights), routers)
    return scan


def block_stacks(model: nn.Module) -> list[BlockStack]:
    """Repeated-block stacks of ``model`` (see :mod:`scaffold.inspection.stacks`), from the shared scan."""
    return scan_model(model).stacks


def predefined_ignore_layers(model: nn.Module) -> list[str]:
    """AutoRound's predefined ignore layers for ``model`` (its first matching rule or the MoE ``.gate`` fallback)."""
    try:
        from auto_round.special_model_handler import get_predefined_ignore_layers

        with autoround_api.quiet_autoround():
            return list(get_predefined_ignore_layers(model))
    except Exception:  # noqa: BLE001 - a rule that cannot run on a meta skeleton ignores nothing
        return []


def _in_blocks(path: str, block_paths: set[str]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:end]) in block_paths for end in range(1, len(parts) + 1))


def _reason_today(
    weight: LinearWeight,
    experts_covered: bool,
    block_paths: set[str],
    ignored: list[str],
    routers: set[str],
    group_size: int,
) -> str | None:
    """Why AutoRound leaves ``weight`` unquantized today, or None when it quantizes it."""
    if not _in_blocks(weight.path, block_paths):
        return OUTSIDE_BLOCKS
    if weight.kind == "experts":
        if not experts_covered:
            return FUSED_EXPERTS
        _, in_f, out_f = expert_matrices(weight.attr, weight.in_features, weight.out_features, weight.num_experts)
        return None if shape_divisible(in_f, out_f, group_size) else NON_DIVISIBLE
    if weight.kind == "custom":
        return ROUTER if weight.name in routers else CUSTOM_CLASS
    if matches_any(weight.path, ignored):
        return IGNORED
    if not shape_divisible(weight.in_features, weight.out_features, group_size):
        return NON_DIVISIBLE
    return None


def _layers(weight: LinearWeight) -> int:
    if weight.kind != "experts":
        return 1
    return expert_matrices(weight.attr, weight.in_features, weight.out_features, weight.num_experts)[0]


def coverage_of(
    model: nn.Module, model_type: str, scan: ModelScan, autoround_blocks: list[list[str]], group_size: int
) -> list[StackCoverage]:
    """Coverage of every stack in ``scan`` given AutoRound's block names."""
    block_paths = {name for names in autoround_blocks for name in names}
    ignored = predefined_ignore_layers(model)
    result = {s.path: StackCoverage(s.path, s.count, 0, 0, 0, 0) for s in scan.stacks}
    replaced = builtin_replacement(model_type)
    covered: dict[str, bool] = {}  # experts module path -> unfused or replaced by AutoRound
    for weight in scan.weights:
        stack = stack_of(weight.path, scan.stacks)
        if stack is None:
            continue
        cov = result[stack.path]
        layers = _layers(weight)
        cov.linear_params += weight.numel
        cov.linear_layers += layers
        if weight.kind == "experts" and weight.path not in covered:
            covered[weight.path] = replaced or autoround_unfuses(model.get_submodule(weight.path), weight.path)
        reason = _reason_today(weight, covered.get(weight.path, False), block_paths, ignored, scan.routers, group_size)
        if reason is None:
            cov.quantizable_params += weight.numel
            cov.quantizable_layers += layers
        else:
            cov.where_unquantized[reason] = cov.where_unquantized.get(reason, 0) + weight.numel
    return list(result.values())


def compute_coverage(ctx: InspectContext) -> list[StackCoverage]:
    """Per block stack of the meta skeleton: linear-like parameters and those AutoRound quantizes today."""
    scan = scan_model(ctx.meta_model)
    blocks = autoround_api.get_block_names(ctx.meta_model)
    return coverage_of(ctx.meta_model, ctx.target.model_type, scan, blocks, ctx.group_size)
