"""Custom projection classes AutoRound does not select (it matches exact types), probed for ``F.linear`` equality."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scaffold.errors import first_line
from scaffold.inspection.context import InspectContext, ProbeUnavailable
from scaffold.inspection.coverage import scan_model
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.inspection.linear_weights import LinearWeight
from scaffold.inspection.stacks import stack_of
from scaffold.modes.fused_moe.probe import single_thread

TOLERANCE = 1e-6


@dataclass
class LinearProbe:
    exact_linear: bool
    max_abs_err: float | None
    error: str | None = None


def _bias_attr(module: nn.Module, weight: LinearWeight) -> str | None:
    candidates = ["bias"] if weight.attr == "weight" else [weight.attr.replace("weight", "bias"), "bias"]
    for name in candidates:
        param = module._parameters.get(name)
        if param is not None and param.dim() == 1 and param.shape[0] == weight.out_features:
            return name
    return None


def probe_linear(module: nn.Module, weight_attr: str, bias_attr: str | None, seed: int = 0) -> LinearProbe:
    """Run ``module(x)`` on random ``x`` and compare with ``F.linear(x, W, b)``."""
    weight = getattr(module, weight_attr, None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        shape = list(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        return LinearProbe(False, None, f"{weight_attr} is not a 2-D weight in the tiny instance ({shape})")
    bias = getattr(module, bias_attr) if bias_attr else None
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, weight.shape[1], generator=generator, dtype=weight.dtype)
    try:
        with torch.no_grad(), single_thread():
            out = module(x)
            expected = F.linear(x, weight, bias)
    except Exception as exc:  # noqa: BLE001 - a forward that needs more arguments is not a plain projection
        return LinearProbe(False, None, first_line(exc))
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
        return LinearProbe(False, None, f"output shape {getattr(out, 'shape', type(out).__name__)}")
    err = float((out - expected).abs().max())
    return LinearProbe(err <= TOLERANCE, err)


def _class_path(cls: type) -> str | None:
    module = getattr(cls, "__module__", None)
    return f"{module}.{cls.__qualname__}" if module and "<locals>" not in cls.__qualname__ else None


def _finding(ctx: InspectContext, cls_name: str, weights: list[LinearWeight]) -> Finding:
    first = weights[0]
    module = ctx.meta_model.get_submodule(first.path)
    bias_attr = _bias_attr(module, first)
    evidence = {
        "class": cls_name,
        "module_class_path": _class_path(type(module)),
        "weight_attr": first.attr,
        "bias_attr": bias_attr,
        "weight_shape": list(first.shape),
        "subclass_of_linear": isinstance(module, nn.Linear),
        "exact_linear": False,
        "max_abs_err": None,
        "count": len(weights),
        "params": sum(w.numel for w in weights),
    }
    probe = "static"
    try:
        tiny = ctx.tiny()
        tiny_module = next((m for m in tiny.model.modules() if type(m).__name__ == cls_name), None)
        if tiny_module is None:
            evidence["probe_error"] = f"no {cls_name} in the tiny instance"
        else:
            result = probe_linear(tiny_module, first.attr, bias_attr)
            evidence.update(exact_linear=result.exact_linear, max_abs_err=result.max_abs_err)
            if result.error:
                evidence["probe_error"] = result.error
            probe = "tiny"
    except ProbeUnavailable as exc:
        evidence["probe_error"] = f"not probed: {exc}"
    if probe == "static":
        how = "not probed (static only)"
    elif evidence["exact_linear"]:
        how = "its forward is exactly F.linear"
    else:
        how = "its forward is NOT plain F.linear"
    return Finding(
        mode=Mode.LAYER_TYPES,
        severity=Severity.SILENT,
        summary=f"{len(weights)} {cls_name} layer(s) hold {evidence['params']:,} weight parameters AutoRound "
        f"does not select ({how})",
        fix=f"convert {cls_name} to nn.Linear before quantization (same weights and names)"
        if evidence["exact_linear"]
        else f"write a quantizable replacement for {cls_name}",
        modules=[w.path for w in weights],
        classes=[cls_name],
        evidence=evidence,
        probe=probe,
    )


def detect(ctx: InspectContext) -> list[Finding]:
    scan = scan_model(ctx.meta_model)
    by_class: dict[str, list[LinearWeight]] = {}
    for weight in scan.weights:
        if weight.kind != "custom" or weight.name in scan.routers or stack_of(weight.path, scan.stacks) is None:
            continue
        by_class.setdefault(weight.cls, []).append(weight)
    return [_finding(ctx, cls_name, weights) for cls_name, weights in by_class.items()]
