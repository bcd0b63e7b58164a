"""Measure how a fused experts module is called and how its 3-D weights are laid out.

The experts module is hooked during a real forward of the tiny instance; the captured call is then
replayed against candidate layouts (gate/up concatenated or interleaved, gate first or not, stored
transposed or not, activation, bias, a single projection per expert, identity experts) and the one
reproducing the module's own output is kept.

Call conventions (which rows go to which expert, with which weight):

- ``topk``: ``(hidden [T, H], top-k indices [T, k], top-k weights [T, k])``;
- ``dense``: ``(hidden [T, H], weights [T, E])``: every expert runs on every token, weighted;
- ``batched``: ``(hidden [E * T, H])``: rows already grouped per expert in ``E`` equal blocks, unweighted;
- ``grouped``: ``(rows [N, H], sizes [E])``: rows sorted per expert, ``sizes[e]`` of them for expert ``e``,
  unweighted (a list of ints or a 1-D integer tensor).
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

from scaffold.inspection.hooks import ModuleCall, capture_calls, first_tensor
from scaffold.markers import EQUIVALENCE_TOLERANCE

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
SINGLE_ACTIVATION = "none"  # a single projection per expert has no activation
CONVENTIONS = ("topk", "dense", "batched", "grouped")
_ACT_ALIASES = {"swish": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh"}


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@contextlib.contextmanager
def single_thread():
    """Run tiny-tensor probes on one thread: intra-op threads cost far more than they save on shared CPUs."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def capture_call(module: nn.Module, run: Callable[[], Any]) -> ModuleCall | None:
    """The first call of ``module`` that returned while ``run()`` executes (None if there is none)."""
    with capture_calls(module, [""]) as log:
        run()
    return log.first("", returned=True)


def expert_counts(module: nn.Module) -> list[int]:
    """The leading (expert) dimensions of ``module``'s 3-D parameters, distinct, smallest first."""
    return sorted({p.shape[0] for p in module._parameters.values() if p is not None and p.dim() == 3})


def _signature(forward: Callable) -> list[str]:
    """Forward parameter names without ``self``; ``*args`` / ``**kwargs`` keep their stars."""
    names = []
    for name, param in inspect.signature(forward).parameters.items():
        if name == "self":
            continue
        star = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}.get(param.kind, "")
        names.append(f"{star}{name}")
    return names


def _bind(module: nn.Module, call: ModuleCall) -> dict[str, Any]:
    try:
        return dict(inspect.signature(type(module).forward).bind(module, *call.args, **call.kwargs).arguments)
    except TypeError:
        return {f"arg{i}": a for i, a in enumerate(call.args)} | call.kwargs


def _sizes(value: Any) -> list[int] | None:
    """``value`` as per-expert row counts (a list/tuple of ints or a 1-D integer tensor), else None."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 1 or value.is_floating_point() or value.dtype == torch.bool:
            return None
        return [int(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)) and value and all(type(v) is int for v in value):
        return list(value)
    return None


def call_convention(module: nn.Module, call: ModuleCall, hidden_size: int) -> dict[str, Any]:
    """Which captured argument is the hidden states and how rows are routed to experts (see module docstring)."""
    signature = _signature(type(module).forward)
    bound = _bind(module, call)
    tensors = {name: value for name, value in bound.items() if isinstance(value, torch.Tensor)}
    hidden = next((n for n, t in tensors.items() if t.is_floating_point() and t.shape[-1] == hidden_size), None)
    index = next((n for n, t in tensors.items() if not t.is_floating_point() and t.dim() == 2), None)
    weight = None
    if index is not None:
        shape = tensors[index].shape
        weight = next((n for n, t in tensors.items() if t.is_floating_point() and t.shape == shape), None)
    result: dict[str, Any] = {
        "convention": "topk" if hidden and index and weight else "unknown",
        "hidden_arg": hidden,
        "index_arg": index,
        "weight_arg": weight,
        "signature": signature,
    }
    if result["convention"] == "topk" or hidden is None:
        return result
    rows, counts = tensors[hidden].numel() // hidden_size, expert_counts(module)
    others = {n: v for n, v in bound.items() if n != hidden and v is not module}
    sizes = next((n for n, v in others.items() if (s := _sizes(v)) and len(s) in counts and sum(s) == rows), None)
    dense = next(
        (
            n
            for n, t in tensors.items()
            if n != hidden and t.is_floating_point() and any(t.numel() == rows * e for e in counts)
        ),
        None,
    )
    if sizes is not None:
        result.update(convention="grouped", index_arg=None, weight_arg=None, sizes_arg=sizes)
    elif dense is not None and index is None:
        result.update(convention="dense", index_arg=None, weight_arg=dense)
    elif len(tensors) == 1 and any(rows % e == 0 for e in counts):
        result.update(convention="batched", index_arg=None, weight_arg=None)
    return result


def routing(convention: dict[str, Any], bound: dict[str, Any], rows: int, num_experts: int):
    """``(index [rows, k], weights [rows, k])``: which expert(s) each hidden row goes to, with which weight."""
    kind = convention["convention"]
    if kind == "topk":
        index, weights = bound[convention["index_arg"]], bound[convention["weight_arg"]]
        return index.reshape(rows, -1), weights.reshape(rows, -1)
    ones = torch.ones(rows, 1)
    if kind == "dense":
        weights = bound[convention["weight_arg"]].reshape(rows, -1)
        return torch.arange(weights.shape[1]).expand(rows, -1), weights
    if kind == "grouped":
        sizes = torch.tensor(_sizes(bound[convention["sizes_arg"]]) or [])
        return torch.repeat_interleave(torch.arange(len(sizes)), sizes)[:, None], ones
    if kind == "batched":
        return (torch.arange(rows) // (rows // num_experts))[:, None], ones
    raise ValueError(f"unknown call convention {kind!r}")


@dataclass
class Layout:
    gate_up: str  # concatenated | interleaved | separate | none (ungated MLP) | single (one projection)
    gate_first: bool
    transposed: bool
    activation: str
    bias: bool
    roles: dict[str, str] = field(default_factory=dict)
    identity_experts: bool = False  # indices past the weighted experts pass their rows through unchanged


def _role_candidates(params: dict[str, torch.Tensor], hidden_size: int) -> list[dict[str, str]]:
    """Role assignments to try: by AutoRound's known names, else by which dimension equals the hidden size."""
    if all(name in _ROLE_BY_NAME for name in params) and len(params) > 1:
        return [{name: _ROLE_BY_NAME[name] for name in params}]
    names = list(params)
    if len(names) == 1:  # one projection per expert (e.g. a per-expert input or output linear)
        return [{names[0]: "proj"}]
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
    experts = min(getattr(module, name).shape[0] for name in by_role.values())

    def proj(role: str, e: int, x: torch.Tensor) -> torch.Tensor:
        name = by_role[role]
        bias = module._parameters.get(bias_name(module, name) or "") if layout.bias else None
        return _project(x, getattr(module, name)[e], bias[e] if bias is not None else None, layout.transposed)

    def expert(e: int, x: torch.Tensor) -> torch.Tensor:
        if e >= experts:  # an identity expert
            return x
        if layout.gate_up == "single":
            return proj("proj", e, x)
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
        return proj("down", e, a)

    out: torch.Tensor | None = None
    for e in index.unique().tolist():
        if e < 0 or (e >= experts and not layout.identity_experts):
            continue
        tok, slot = torch.where(index == e)
        y = expert(e, hidden[tok])
        if out is None:
            out = hidden.new_zeros(hidden.shape[0], y.shape[-1])
        out.index_add_(0, tok, y * weights[tok, slot, None].to(y.dtype))
    return out if out is not None else torch.zeros_like(hidden)


def _activation_order(hidden_act: str | None) -> list[str]:
    first = _ACT_ALIASES.get(str(hidden_act), str(hidden_act)) if hidden_act else None
    return ([first] if first in _ACTIVATIONS else []) + [a for a in _ACTIVATIONS if a != first]


def bias_name(module: nn.Module, name: str) -> str | None:
    """The 2-D bias parameter of the 3-D expert weight ``name`` (``<name>_bias``, or ``bias`` beside ``weight``)."""
    for candidate in (f"{name}_bias", "bias" if name == "weight" else None):
        param = module._parameters.get(candidate) if candidate else None
        if param is not None and param.dim() == 2:
            return candidate
    return None


def _layouts(params: dict[str, torch.Tensor], hidden_size: int, has_bias: bool, hidden_act: str | None, identity: bool):
    for roles in _role_candidates(params, hidden_size):
        values = set(roles.values())
        if "proj" in values:
            splits, activations = [("single", True)], [SINGLE_ACTIVATION]
        else:
            if "gate_up" in values:
                splits = [(s, g) for s in ("concatenated", "interleaved") for g in (True, False)]
            elif "gate" in values:
                splits = [("separate", True)]
            else:
                splits = [("none", True)]
            activations = _activation_order(hidden_act)
        for transposed in (False, True):
            for (split, gate_first), activation in itertools.product(splits, activations):
                for bias in (True, False) if has_bias else (False,):
                    for identity_experts in (False, True) if identity else (False,):
                        yield Layout(split, gate_first, transposed, activation, bias, dict(roles), identity_experts)


def probe_layout(
    module: nn.Module, call: ModuleCall, convention: dict[str, Any], hidden_act: str | None
) -> dict[str, Any]:
    """Replay ``call`` against candidate layouts; ``probed: true`` with the first one that reproduces the output."""
    output = first_tensor(call.output, leading=True)
    if convention["convention"] not in CONVENTIONS or output is None:
        return {
            "probed": False,
            "reason": "call convention not recognised: no top-k indices and weights, per-expert weights "
            "[tokens, experts], per-expert row counts, or rows in equal per-expert blocks among the arguments "
            f"{convention.get('signature')}",
        }
    bound = _bind(module, call)
    hidden = bound[convention["hidden_arg"]]
    size = hidden.shape[-1]
    hidden2d = hidden.reshape(-1, size)
    counts = expert_counts(module)
    index, weights = routing(convention, bound, hidden2d.shape[0], counts[0])
    target = output.reshape(hidden2d.shape[0], -1) if output.numel() % hidden2d.shape[0] == 0 else output
    params = {n: p for n, p in module._parameters.items() if p is not None and p.dim() == 3}
    has_bias = any(bias_name(module, n) for n in params)
    if target.shape[0] != hidden2d.shape[0] or index.shape[0] != hidden2d.shape[0]:
        return {"probed": False, "reason": f"output shape {list(output.shape)} does not have one row per input row"}
    identity = bool((index >= counts[0]).any())  # routed past the experts with weights: identity experts?
    rows = slice(0, min(SCREEN_TOKENS, hidden2d.shape[0]))  # screen candidates on a few tokens, confirm on all
    best: tuple[float, Layout] | None = None
    with torch.no_grad(), single_thread():
        for layout in _layouts(params, size, has_bias, hidden_act, identity):
            act = _ACTIVATIONS.get(layout.activation, _identity)
            try:
                screened = _replay(module, layout, hidden2d[rows], index[rows], weights[rows], act)
                err = float((screened - target[rows]).abs().max())
                if err <= EQUIVALENCE_TOLERANCE:
                    err = float((_replay(module, layout, hidden2d, index, weights, act) - target).abs().max())
            except (RuntimeError, KeyError, IndexError):
                continue
            if best is None or err < best[0]:
                best = (err, layout)
            if err <= EQUIVALENCE_TOLERANCE:
                return {"probed": True, **_layout_dict(module, layout), "max_abs_err": err}
    result: dict[str, Any] = {"probed": False, "reason": "no candidate layout reproduces the module output"}
    if best is not None:
        result["closest"] = {**_layout_dict(module, best[1]), "max_abs_err": best[0]}
    return result


def _layout_dict(module: nn.Module, layout: Layout) -> dict[str, Any]:
    roles = dict(layout.roles)
    if layout.bias:  # the bias parameters too, so the generator can copy them
        roles |= {bias: role for name, role in layout.roles.items() if (bias := bias_name(module, name))}
    result = {
        "gate_up": layout.gate_up,
        "gate_first": layout.gate_first,
        "transposed": layout.transposed,
        "activation": layout.activation,
        "bias": layout.bias,
        "roles": roles,
    }
    if layout.identity_experts:  # only the first experts_with_weights indices have weights
        result["identity_experts"] = True
        result["experts_with_weights"] = min(getattr(module, name).shape[0] for name in layout.roles)
    return result
