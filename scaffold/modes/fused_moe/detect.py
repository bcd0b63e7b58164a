"""Fused (3-D) experts: does AutoRound unfuse or replace them, and what is their measured call and layout?"""

from __future__ import annotations

from typing import Any

from torch import nn

from scaffold.codegen.model_key import built_model_types
from scaffold.inspection.context import InspectContext, ProbeUnavailable
from scaffold.inspection.coverage import scan_model
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.inspection.linear_weights import LinearWeight
from scaffold.inspection.moe_support import (
    autoround_unfuses,
    builtin_replacement,
    experts_interface,
    has_experts_interface,
)
from scaffold.modes.fused_moe.probe import call_convention, capture_call, probe_layout, single_thread
from scaffold.versions import package_version

_UNKNOWN_CALL = {"convention": "unknown", "hidden_arg": None, "index_arg": None, "weight_arg": None, "signature": []}


def _hidden_act(config: Any) -> str | None:
    for cfg in (config, getattr(config, "text_config", None)):
        act = getattr(cfg, "hidden_act", None) if cfg is not None else None
        if isinstance(act, str):
            return act
    return None


def _probe(ctx: InspectContext, cls_name: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(call, layout, probe) measured on the tiny instance, or the static placeholders and why."""
    try:
        tiny = ctx.tiny()
    except ProbeUnavailable as exc:
        return dict(_UNKNOWN_CALL), {"probed": False, "reason": f"not probed: {exc}"}, "static"
    module = next((m for m in tiny.model.modules() if type(m).__name__ == cls_name), None)
    if module is None:
        return dict(_UNKNOWN_CALL), {"probed": False, "reason": f"no {cls_name} in the tiny instance"}, "static"
    try:
        with single_thread():
            call = capture_call(module, tiny.forward)
    except Exception as exc:  # noqa: BLE001 - the tiny forward failing is reported, not raised
        return dict(_UNKNOWN_CALL), {"probed": False, "reason": f"tiny forward failed: {type(exc).__name__}"}, "tiny"
    if call is None:
        return dict(_UNKNOWN_CALL), {"probed": False, "reason": "experts module not called by the forward"}, "tiny"
    sizes = [getattr(tiny.config, "hidden_size", None)]
    sizes += [d for p in module.parameters() if p.dim() == 3 for d in p.shape[1:]]
    convention = dict(_UNKNOWN_CALL)
    for size in dict.fromkeys(s for s in sizes if isinstance(s, int)):  # the call tells which dimension is hidden
        convention = call_convention(module, call, int(size))
        if convention["convention"] != "unknown":
            break
    return convention, probe_layout(module, call, convention, _hidden_act(tiny.config)), "tiny"


def _finding(ctx: InspectContext, cls_name: str, paths: list[str], weights: list[LinearWeight]) -> Finding:
    module: nn.Module = ctx.meta_model.get_submodule(paths[0])
    decorated = experts_interface(module)
    unfuses = autoround_unfuses(module, paths[0])
    replaced = all(builtin_replacement(model_type) for model_type in built_model_types(ctx))
    call, layout, probe = _probe(ctx, cls_name)
    first = [w for w in weights if w.path == paths[0]]
    params = sum(w.numel for w in weights)
    evidence = {
        "class": cls_name,
        "num_experts": first[0].num_experts,
        "params": {w.attr: list(w.shape) for w in first},
        "experts_interface": decorated,
        "autoround_unfuses": unfuses,
        "builtin_replacement": replaced,
        "model_type": str(getattr(ctx.meta_model.config, "model_type", "") or ctx.target.model_type),
        "call": call,
        "layout": layout,
        "count": len(paths),
        "total_params": params,
    }
    if not has_experts_interface():
        evidence["note"] = f"transformers {package_version('transformers')} has no experts interface"
    covered = unfuses or replaced
    if covered:
        how = "unfuses them (experts interface)" if unfuses else "replaces them (BUILTIN_MODULES)"
        summary = f"{len(paths)} fused {cls_name} module(s): AutoRound {how}"
        fix = "nothing to do"
    else:
        why = "its forward is not decorated by use_experts_implementation" if not decorated else "no known projections"
        summary = (
            f"{len(paths)} fused {cls_name} module(s) hold {params:,} parameters AutoRound leaves unquantized ({why})"
        )
        fix = f"register a ReplacementModuleBase for {cls_name} that splits the experts into per-expert nn.Linear"
    return Finding(
        mode=Mode.FUSED_MOE,
        severity=Severity.OK if covered else Severity.SILENT,
        summary=summary,
        fix=fix,
        modules=paths,
        classes=[cls_name],
        evidence=evidence,
        probe=probe,
    )


def detect(ctx: InspectContext) -> list[Finding]:
    scan = scan_model(ctx.meta_model)
    by_class: dict[str, list[LinearWeight]] = {}
    for weight in scan.weights:
        if weight.kind == "experts":
            by_class.setdefault(weight.cls, []).append(weight)
    findings = []
    for cls_name, weights in by_class.items():
        paths = list(dict.fromkeys(w.path for w in weights))
        findings.append(_finding(ctx, cls_name, paths, weights))
    return findings
