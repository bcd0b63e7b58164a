"""Layers that must stay in float: shapes AutoRound cannot quantize, MoE routers, multi-token-prediction layers."""

from __future__ import annotations

import re
from typing import Any

from scaffold.inspection.context import InspectContext
from scaffold.inspection.coverage import predefined_ignore_layers, scan_model
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.inspection.linear_weights import SHAPE_MULTIPLE, matches_any, shape_divisible
from scaffold.inspection.stacks import BlockStack, stack_of

_MTP = re.compile(r"(^|\.)(mtp|nextn)[^.]*", re.IGNORECASE)


def layer_patterns(intended: list[str], all_names: list[str]) -> list[str]:
    """Short names for ``register_ignore_layers`` that match exactly ``intended`` under AutoRound's substring rule.

    Each module path is shortened to its last two components (``mlp.gate``) when that suffix matches no other
    linear layer; otherwise the full path is kept.
    """
    wanted = set(intended)
    patterns: list[str] = []
    for name in intended:
        suffix = ".".join(name.split(".")[-2:])
        if all(n in wanted for n in all_names if suffix in n):
            candidate = suffix
        else:
            candidate = name
        if candidate not in patterns:
            patterns.append(candidate)
    return patterns


def _num_hidden_layers(config: Any) -> int | None:
    for cfg in (config, getattr(config, "text_config", None)):
        value = getattr(cfg, "num_hidden_layers", None) if cfg is not None else None
        if isinstance(value, int):
            return value
    return None


def _declared_mtp_layers(config: Any) -> int:
    """MTP layers the config declares (``num_nextn_predict_layers``, ``num_mtp_layers``, ...), 0 when none."""
    for cfg in (config, getattr(config, "text_config", None)):
        for key, value in vars(cfg).items() if cfg is not None else ():
            if re.search(r"nextn|mtp", key, re.IGNORECASE) and isinstance(value, int) and not isinstance(value, bool):
                if value > 0:
                    return value
    return 0


def _mtp_paths(stacks: list[BlockStack], names: list[str], num_layers: int | None, declared: int = 0) -> list[str]:
    """Modules named mtp/nextn (with a trailing dot) and, when the config declares MTP layers, the blocks beyond
    ``num_hidden_layers`` in a text stack (without that declaration extra blocks are something else: a decoder
    longer than the encoder whose count ``num_hidden_layers`` holds, as in blenderbot)."""
    found: list[str] = []
    for stack in stacks:
        if declared and stack.modality == "text" and num_layers and stack.count > num_layers:
            found.extend(f"{block}." for block in stack.blocks[num_layers:])
    for name in names:
        match = _MTP.search(name)
        if match:
            prefix = name[: match.end()] + "."
            if not any(prefix.startswith(p) for p in found):
                found.append(prefix)
    return found


def detect(ctx: InspectContext) -> list[Finding]:
    scan = scan_model(ctx.meta_model)
    in_stacks = [w for w in scan.weights if stack_of(w.path, scan.stacks) is not None]
    two_d = [w for w in scan.weights if w.kind != "experts"]
    all_names = [w.path for w in two_d]
    ignored_today = predefined_ignore_layers(ctx.meta_model)

    non_divisible = [
        {"path": w.path, "in_features": w.in_features, "out_features": w.out_features}
        for w in in_stacks
        if w.kind != "experts"
        and w.name not in scan.routers
        and not matches_any(w.path, ignored_today)
        and not shape_divisible(w.in_features, w.out_features, ctx.group_size)
    ]
    # Layers AutoRound's generic fallback keeps in float today (e.g. shared_expert_gate): a new rule must list them.
    also_ignored = [
        w.path
        for w in in_stacks
        if w.kind != "experts" and w.name not in scan.routers and matches_any(w.path, ignored_today)
    ]
    padded = sum(1 for w in in_stacks if w.kind != "experts" and ctx.group_size > 0 and w.in_features % ctx.group_size)
    routers = [w for w in in_stacks if w.name in scan.routers]
    routers_quantized = [w.path for w in routers if w.kind == "linear" and not matches_any(w.path, ignored_today)]
    mtp = _mtp_paths(scan.stacks, all_names, _num_hidden_layers(ctx.config), _declared_mtp_layers(ctx.config))
    if not (non_divisible or routers or mtp):
        return []

    patterns = layer_patterns([w.path for w in routers], all_names)
    patterns += [p for p in layer_patterns(also_ignored, all_names) if p not in patterns]
    patterns += [p for p in mtp if p not in patterns]
    patterns += [p for p in layer_patterns([d["path"] for d in non_divisible], all_names) if p not in patterns]
    problems = []  # AutoRound keeps non-divisible shapes in float by itself (at export): listed, not a problem
    if routers_quantized:
        problems.append(f"{len(routers_quantized)} router(s) AutoRound would quantize")
    if mtp:
        problems.append(f"{len(mtp)} multi-token-prediction module(s)")
    kept = [f"{len(routers)} MoE router(s)"] if routers else []
    if non_divisible:
        kept.append(f"{len(non_divisible)} layer(s) with a dimension not divisible by {SHAPE_MULTIPLE}")
    summary = (
        "; ".join(problems) + " must stay in float"
        if problems
        else " and ".join(kept) + ", already kept in float by AutoRound"
    )
    return [
        Finding(
            mode=Mode.IGNORE_LAYERS,
            severity=Severity.SILENT if problems else Severity.OK,
            summary=summary,
            fix="register_ignore_layers for this model type with evidence.layer_patterns (routers listed too: "
            "a matching rule disables AutoRound's generic '.gate' fallback)"
            if problems
            else "nothing to do (keep the routers in any ignore rule added for this model type)",
            modules=[w.path for w in routers] + [d["path"] for d in non_divisible] + mtp,
            evidence={
                "non_divisible": non_divisible,
                "routers": [w.path for w in routers],
                "routers_quantized_today": routers_quantized,
                "ignored_today": also_ignored,
                "mtp": mtp,
                "group_size": ctx.group_size,
                "padded": padded,  # layers whose input dim the group size does not divide: int schemes pad them
                "layer_patterns": patterns,
            },
        )
    ]
