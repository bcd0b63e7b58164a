"""Measure how a fused experts module is called and how its 3-D weights are laid out.

The experts module is hooked during a real forward of the tiny instance; the captured call is then
replayed against candidate layouts (gate/up concatenated or interleaved, gate first or not, stored
transposed or not, activation, bias) and the one reproducing the module's own output is kept.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TOLERANCE = 1e-5
SCREEN_TOKENS = 4
_ROLE_BY_NAME = {
    "gate_up_proj": "gate_up",
    "gate_proj": "gate",
    "w1": "gate",
    "up_proj": "up",
    "w3": "up",
    "down_proj": "down",
    "w2": "down",
}
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}
_ACT_ALIASES = {"swish": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh"}


@contextlib.contextmanager
def single_thread():
    """Run tiny-tensor probes on one thread: intra-op threads cost far more than they save on shared CPUs."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class CapturedCall:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Any


def capture_call(module: nn.Module, run: Callable[[], Any]) -> CapturedCall | None:
    """The first call of ``module`` while ``run()`` executes (None if it is never called)."""
    calls: list[CapturedCall] = []

    def hook(_mod: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if not calls:
            calls.append(CapturedCall(args, dict(kwargs), output))

    handle = module.register_forward_hook(hook, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return calls[0] if calls else None


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def call_convention(module: nn.Module, call: CapturedCall, hidden_size: int) -> dict[str, Any]:
    """Which captured argument is the hidden states [T, H], the top-k indices and the top-k weights [T, k]."""
    forward = type(module).forward
    signature = [p for p in inspect.signature(forward).parameters if p != "self"]
    try:
        bound = inspect.signature(forward).bind(module, *call.args, **call.kwargs).arguments
    except TypeError:
        bound = {f"arg{i}": a for i, a in enumerate(call.args)} | call.kwargs
    tensors = {name: value for name, value in bound.items() if isinstance(value, torch.Tensor)}
    hidden = next((n for n, t in tensors.items() if t.is_floating_point() and t.shape[-1] == hidden_size), None)
    index = next((n for n, t in tensors.items() if not t.is_floating_point() and t.dim() == 2), None)
    weight = None
    if index is not None:
        shape = tensors[index].shape
        weight = next((n for n, t in tensors.items() if t.is_floating_point() and t.shape == shape), None)
    convention = "topk" if hidden and index and weight else "unknown"
    return {
        "convention": convention,
        "hidden_arg": hidden,
        "index_arg": index,
        "weight_arg": weight,
        "signature": signature,
    }


@dataclass
class Layout:
    gate_up: str  # concatenated | interleaved | separate | none (ungated)
    gate_first: bool
    transposed: bool
    activation: str
    bias: bool
    roles: dict[str, str] = field(default_factory=dict)


def _role_candidates(params: dict[str, torch.Tensor], hidden_size: int) -> list[dict[str, str]]:
    """Role assignments to try: by AutoRound's known names, else by which dimension equals the hidden size."""
    if all(name in _ROLE_BY_NAME for name in params):
        return [{name: _ROLE_BY_NAME[name] for name in params}]
    names = list(params)
    candidates = []
    for down in names:
        rest = [n for n in names if n != down]
        if hidden_size not in params[down].shape[1:]:
            continue
        if len(rest) == 1:
            candidates.append({rest[0]: "gate_up", down: "down"})
            candidates.append({rest[0]: "up", down: "down"})
        elif len(rest) == 2:
            for gate, up in itertools.permutations(rest):
                candidates.append({gate: "gate", up: "up", down: "down"})
    return candidates


def _project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, transposed: bool) -> torch.Tensor:
    out = x @ weight if transposed else x @ weight.t()
    return out + bias if bias is not None else out


def _replay(
    module: nn.Module,
    layout: Layout,
    hidden: torch.Tensor,
    index: torch.Tensor,
    weights: torch.Tensor,
    act: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    by_role = {role: name for name, role in layout.roles.items()}

    def proj(role: str, e: int, x: torch.Tensor) -> torch.Tensor:
        name = by_role[role]
        bias = module._parameters.get(f"{name}_bias") if layout.bias else None
        return _project(x, getattr(module, name)[e], bias[e] if bias is not None else None, layout.transposed)

    out = torch.zeros_like(hidden)
    for e in index.unique().tolist():
        if e < 0 or e >= getattr(module, by_role["down"]).shape[0]:
            continue
        tok, slot = torch.where(index == e)
        x = hidden[tok]
        if layout.gate_up in ("concatenated", "interleaved"):
            h = proj("gate_up", e, x)
            if layout.gate_up == "concatenated":
                first, second = h.chunk(2, dim=-1)
            else:
                first, second = h[..., 0::2], h[..., 1::2]
            gate, up = (first, second) if layout.gate_first else (second, first)
            a = act(gate) * up
        elif layout.gate_up == "separate":
            a = act(proj("gate", e, x)) * proj("up", e, x)
        else:
            a = act(proj("up", e, x))
        y = proj("down", e, a)
        out.index_add_(0, tok, y * weights[tok, slot, None].to(y.dtype))
    return out


def _activation_order(hidden_act: str | None) -> list[str]:
    first = _ACT_ALIASES.get(str(hidden_act), str(hidden_act)) if hidden_act else None
    return ([first] if first in _ACTIVATIONS else []) + [a for a in _ACTIVATIONS if a != first]


def _layouts(params: dict[str, torch.Tensor], hidden_size: int, has_bias: bool, hidden_act: str | None):
    for roles in _role_candidates(params, hidden_size):
        values = set(roles.values())
        if "gate_up" in values:
            splits = [(s, g) for s in ("concatenated", "interleaved") for g in (True, False)]
        elif "gate" in values:
            splits = [("separate", True)]
        else:
            splits = [("none", True)]
        for transposed in (False, True):
            for (split, gate_first), activation in itertools.product(splits, _activation_order(hidden_act)):
                for bias in (True, False) if has_bias else (False,):
                    yield Layout(split, gate_first, transposed, activation, bias, dict(roles))


def probe_layout(
    module: nn.Module, call: CapturedCall, convention: dict[str, Any], hidden_act: str | None
) -> dict[str, Any]:
    """Replay ``call`` against candidate layouts; ``probed: true`` with the first one that reproduces the output."""
    output = _first_tensor(call.output)
    if convention["convention"] != "topk" or output is None:
        return {"probed": False, "reason": "call convention not recognised (no hidden/top-k index/top-k weights)"}
    bound = inspect.signature(type(module).forward).bind(module, *call.args, **call.kwargs).arguments
    hidden = bound[convention["hidden_arg"]]
    size = hidden.shape[-1]
    hidden2d, index, weights = hidden.reshape(-1, size), bound[convention["index_arg"]], bound[convention["weight_arg"]]
    target = output.reshape(-1, output.shape[-1])
    params = {n: p for n, p in module._parameters.items() if p is not None and p.dim() == 3}
    has_bias = any(f"{n}_bias" in module._parameters for n in params)
    if target.shape != hidden2d.shape or index.shape[0] != hidden2d.shape[0]:
        return {"probed": False, "reason": f"output shape {list(target.shape)} is not the hidden states' shape"}
    rows = slice(0, min(SCREEN_TOKENS, hidden2d.shape[0]))  # screen candidates on a few tokens, confirm on all
    best: tuple[float, Layout] | None = None
    with torch.no_grad(), single_thread():
        for layout in _layouts(params, size, has_bias, hidden_act):
            act = _ACTIVATIONS[layout.activation]
            try:
                screened = _replay(module, layout, hidden2d[rows], index[rows], weights[rows], act)
            except (RuntimeError, KeyError, IndexError):
                continue
            err = float((screened - target[rows]).abs().max())
            if err <= TOLERANCE:
                err = float((_replay(module, layout, hidden2d, index, weights, act) - target).abs().max())
            if best is None or err < best[0]:
                best = (err, layout)
            if err <= TOLERANCE:
                return {"probed": True, **_layout_dict(layout), "max_abs_err": err}
    result: dict[str, Any] = {"probed": False, "reason": "no candidate layout reproduces the module output"}
    if best is not None:
        result["closest"] = {**_layout_dict(best[1]), "max_abs_err": best[0]}
    return result


def _layout_dict(layout: Layout) -> dict[str, Any]:
    return {
        "gate_up": layout.gate_up,
        "gate_first": layout.gate_first,
        "transposed": layout.transposed,
        "activation": layout.activation,
        "bias": layout.bias,
        "roles": layout.roles,
    }
