"""Repeated-block stacks found in the module tree, independently of AutoRound's own detection."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from scaffold.linear_weights import LinearWeight, linear_weights

_VISION_KEYS = ("vision", "visual", "image", "img")
_AUDIO_KEYS = ("audio", "speech", "wav", "waveform")


@dataclass
class BlockStack:
    """A container of >= 2 numbered blocks of one class (or a layer list of a few classes) holding linear weights."""

    path: str
    block_class: str  # "A" or "A|B" for hybrid stacks
    count: int
    container: str  # ModuleList | Sequential | ModuleDict | numbered
    linear_params: int  # parameters in linear-like weights (2-D projections and 3-D experts)
    blocks: list[str] = field(default_factory=list)  # full block paths, in order
    modality: str = "text"  # text | vision | audio (from the path, like AutoRound's own keys)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "block_class": self.block_class,
            "count": self.count,
            "container": self.container,
            "linear_params": self.linear_params,
            "modality": self.modality,
        }


def _container_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.ModuleList):
        return "ModuleList"
    if isinstance(module, nn.Sequential):
        return "Sequential"
    if isinstance(module, nn.ModuleDict):
        return "ModuleDict"
    names = list(module._modules)
    if len(names) >= 2 and all(name.isdigit() for name in names):
        return "numbered"
    return None


def _modality(path: str) -> str:
    lowered = path.lower()
    if any(key in lowered for key in _VISION_KEYS):
        return "vision"
    if any(key in lowered for key in _AUDIO_KEYS):
        return "audio"
    return "text"


def _with_linear(weights: Iterable[LinearWeight]) -> set[str]:
    """Every module path that has a linear-like weight somewhere below (or on) it."""
    paths: set[str] = {""}
    for weight in weights:
        parts = weight.path.split(".") if weight.path else []
        for end in range(1, len(parts) + 1):
            paths.add(".".join(parts[:end]))
    return paths


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _as_stack(path: str, module: nn.Module, with_linear: set[str]) -> BlockStack | None:
    kind = _container_kind(module)
    children = [(name, child) for name, child in module._modules.items() if child is not None]
    if kind is None or len(children) < 2:
        return None
    # A block has structure (submodules) and linear weights; a list of bare layers is not a block stack.
    if not all(child._modules and _join(path, name) in with_linear for name, child in children):
        return None
    classes = list(dict.fromkeys(type(child).__name__ for _, child in children))
    if len(classes) > 1 and kind not in ("ModuleList", "Sequential", "numbered"):
        return None
    return BlockStack(
        path=path,
        block_class="|".join(classes),
        count=len(children),
        container=kind,
        linear_params=0,
        blocks=[_join(path, name) for name, _ in children],
        modality=_modality(path),
    )


def block_stacks(model: nn.Module, weights: list[LinearWeight] | None = None) -> list[BlockStack]:
    """Repeated-block stacks of ``model`` in registration order; blocks nested in a stack are part of it."""
    weights = linear_weights(model) if weights is None else weights
    with_linear = _with_linear(weights)
    stacks: list[BlockStack] = []

    def visit(path: str, module: nn.Module) -> None:
        stack = _as_stack(path, module, with_linear) if path else None
        if stack is not None:
            stacks.append(stack)
            return
        for name, child in module._modules.items():
            child_path = _join(path, name)
            if child is not None and child_path in with_linear:
                visit(child_path, child)

    visit("", model)
    for stack in stacks:
        prefix = stack.path + "."
        stack.linear_params = sum(w.numel for w in weights if w.path.startswith(prefix))
    return stacks


def stack_of(path: str, stacks: list[BlockStack]) -> BlockStack | None:
    """The stack a module path lies in, if any."""
    for stack in stacks:
        if path.startswith(stack.path + "."):
            return stack
    return None
