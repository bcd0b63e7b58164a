"""The equivalence check fused_moe and layer_types share: each replaced module computes what the original did.

Float32, the same inputs captured from one forward of the tiny instance; fused experts get every expert routed.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from scaffold.inspection.hooks import capture_calls
from scaffold.markers import EQUIVALENCE_TOLERANCE


def adapt_like_autoround(model: nn.Module) -> nn.Module:
    """The structural changes AutoRound makes before calibration: replacements, then special handling."""
    from auto_round import special_model_handler as handler
    from auto_round.modeling.fused_moe.replace_modules import materialize_model_

    model = handler.update_module(model, cleanup_original=False)
    materialize_model_(model)
    return handler._handle_special_model(model)


@dataclass
class Equivalence:
    checked: list[str] = field(default_factory=list)  # module paths compared
    max_abs_err: float = 0.0
    problems: list[str] = field(default_factory=list)


def _tensors(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, list | tuple):
        return [t for item in output for t in _tensors(item)]
    return []


def _route_every_expert(module: nn.Module, args: tuple, kwargs: dict, entry: dict[str, Any]) -> tuple[tuple, dict]:
    """Replace the expert indices of a captured call by a round-robin assignment so every expert is used."""
    index_arg, experts = entry.get("index_arg"), entry.get("num_experts")
    if not index_arg or not experts:
        return args, kwargs
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    index = bound.arguments.get(index_arg)
    if not isinstance(index, torch.Tensor):
        return args, kwargs
    bound.arguments[index_arg] = (torch.arange(index.numel()) % experts).reshape(index.shape).to(index.dtype)
    return bound.args, bound.kwargs


def module_paths(entry: dict[str, Any]) -> list[str]:
    """Paths of the modules one fused_moe / layer_types entry covers (``module_paths``, or ``modules``)."""
    return list(entry.get("module_paths") or entry.get("modules") or [])


def entries_of(test_data: Mapping[str, Any], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The replaced-module entries of the modes ``keys`` (``TEST_DATA`` is keyed by mode value), in that order."""
    return [entry for key in keys for entry in test_data.get(key, [])]


def check_equivalence(
    tiny: Any,
    test_data: Mapping[str, Any],
    tolerance: float = EQUIVALENCE_TOLERANCE,
    *,
    keys: tuple[str, ...],
) -> Equivalence:
    """Each replaced or converted module (entries under ``keys``) computes what the original did."""
    from scaffold.testkit import record_verdict

    entries = entries_of(test_data, keys)
    result = Equivalence()
    if not entries:
        return result
    reference = copy.deepcopy(tiny.model).float().eval()
    adapted = adapt_like_autoround(copy.deepcopy(tiny.model).float().eval())
    paths = [path for entry in entries for path in module_paths(entry)]
    # the inputs each module is first called with, copied before its forward can change them in place
    with capture_calls(reference, paths, outputs=False, copy_inputs=True) as log, torch.no_grad():
        reference(**tiny.inputs)
    for entry in entries:
        for path in module_paths(entry):
            original, new = reference.get_submodule(path), adapted.get_submodule(path)
            if type(new) is type(original):
                result.problems.append(f"{path}: still {type(original).__name__}, the adaptation did not replace it")
                continue
            call = log.first(path)
            if call is None:
                result.problems.append(f"{path}: not called by the model's forward")
                continue
            args, kwargs = _route_every_expert(original, call.args, call.kwargs, entry)
            with torch.no_grad():
                expected, got = _tensors(original(*args, **kwargs)), _tensors(new(*args, **kwargs))
            if not expected or len(expected) != len(got):
                result.problems.append(f"{path}: outputs differ in structure ({len(expected)} vs {len(got)} tensors)")
                continue
            err = max(float((a.float() - b.float()).abs().max()) for a, b in zip(expected, got, strict=True))
            result.max_abs_err = max(result.max_abs_err, err)
            result.checked.append(path)
            if err > tolerance:
                result.problems.append(f"{path}: max abs error {err:.3g} > {tolerance}")
            if all(float(t.abs().max()) == 0.0 for t in got):
                result.problems.append(f"{path}: the replacement's output is all zero")
    record_verdict(max_equivalence_error=result.max_abs_err, modules_compared=len(result.checked))
    return result
