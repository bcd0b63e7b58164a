"""Capture what named modules are called with during a forward, and find the first tensor in a value.

Every dynamic probe (block inputs, stack chains, fused experts calls, the equivalence check) records module
calls with :func:`capture_calls` and reads tensors out of outputs with :func:`first_tensor`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class ModuleCall:
    """One call of a hooked module: its arguments as its forward got them and, once it returned, its output."""

    path: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Any = None  # None until the forward returned, and always when captured with outputs=False
    returned: bool = False  # False while the forward runs, and for good if it raised


@dataclass
class CallLog:
    """Calls recorded by :func:`capture_calls`: by module path, in the order the calls started."""

    calls: dict[str, list[ModuleCall]] = field(default_factory=dict)

    def first(self, path: str, *, returned: bool = False) -> ModuleCall | None:
        """The first call of ``path``; with ``returned=True`` the first whose forward returned."""
        return next((call for call in self.calls.get(path, ()) if call.returned or not returned), None)

    def reached(self, path: str) -> bool:
        return bool(self.calls.get(path))


@contextlib.contextmanager
def capture_calls(
    model: nn.Module, paths: Iterable[str], *, outputs: bool = True, copy_inputs: bool = False
) -> Iterator[CallLog]:
    """Record every call of the submodules of ``model`` at ``paths`` (``""``: ``model`` itself) while the body runs.

    A forward pre-hook (with kwargs) records the arguments, a forward hook the output (``outputs=False`` keeps none)
    and marks the call returned. ``copy_inputs=True`` deep-copies the arguments before the forward can change them
    in place. Every hook is removed when the body ends, also when it raises.
    """
    log = CallLog()
    running: dict[str, list[ModuleCall]] = {}  # calls started and not yet returned, innermost last
    handles = []

    def before(path: str, _module: nn.Module, args: tuple, kwargs: dict) -> None:
        kwargs = dict(kwargs)
        if copy_inputs:
            args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
        call = ModuleCall(path, args, kwargs)
        log.calls.setdefault(path, []).append(call)
        running.setdefault(path, []).append(call)

    def after(path: str, _module: nn.Module, _args: tuple, _kwargs: dict, output: Any) -> None:
        if running.get(path):
            call = running[path].pop()
            call.returned = True
            call.output = output if outputs else None

    try:
        for path in dict.fromkeys(paths):
            module = model.get_submodule(path)
            handles.append(module.register_forward_pre_hook(functools.partial(before, path), with_kwargs=True))
            handles.append(module.register_forward_hook(functools.partial(after, path), with_kwargs=True))
        yield log
    finally:
        for handle in handles:
            handle.remove()


def first_tensor(value: Any, *, leading: bool = False, floating: bool = False) -> torch.Tensor | None:
    """The first tensor in ``value``, depth first; None when it holds none.

    A tensor is itself; a tuple or list is searched in order, a dict or ``ModelOutput`` by its values (a
    ModelOutput holds only its fields that are set), any other object with ``to_tuple()`` by that tuple;
    anything else (None, numbers, strings, caches) holds no tensor. ``leading=True`` follows only the first
    element at each level, as AutoRound reads a block's output (``output[0]``): ``(None, t)`` gives None.
    ``floating=True`` passes over integer and bool tensors.
    """
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() or not floating else None
    if isinstance(value, Mapping):
        items: Any = list(value.values())
    elif isinstance(value, (tuple, list)):
        items = value
    elif hasattr(value, "to_tuple"):
        items = value.to_tuple()
    else:
        return None
    for item in items[:1] if leading else items:
        found = first_tensor(item, leading=leading, floating=floating)
        if found is not None:
            return found
    return None
