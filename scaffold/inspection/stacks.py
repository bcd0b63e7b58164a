"""Repeated-block stacks found in the module tree, independently of AutoRound's own detection."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from scaffold.inspection.linear_weights import LinearWeight, linear_weights

_VISION_KEYS = ("vision", "visual", "image", "img")
_AUDIO_KEYS = ("audio", "speech", "wav", "waveform")


@dataclass
class BlockStack:
    """A container of >= 2 numbered blocks of one class (or a layer list of a few classes) holding linear weights."""

    path: str
    block_class: str  # "A" or "A|B" for hybrid stacks
    count: int
    container: str  # ModuleList | Sequential | ModuleDict | numbered | custom
    linear_params: int  # parameters in linear-like weights (2-D projections and 3-D experts)
    blocks: list[str] = field(default_factory=list)  # full block paths, in order
    modality: str = "text"  # text | vision | audio (from the path, like AutoRound's own keys)
    partial: bool = False  # the container also holds other children (embedding, head): only ``blocks`` count
    structural_only: bool = False  # a custom container: a stack only once the forward is seen to chain it

    @property
    def block_classes(self) -> list[str]:
        return self.block_class.split("|")

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "block_class": self.block_class,
            "count": self.count,
            "container": self.container,
            "linear_params": self.linear_params,
            "modality": self.modality,
            **({"blocks": list(self.blocks), "partial": True} if self.partial else {}),
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


def _is_block(path: str, module: nn.Module, with_linear: set[str]) -> bool:
    """A block has structure (submodules) and linear weights; a bare layer is not a block, and neither is a
    ModuleList or ModuleDict (a container of lists is not a stack of blocks: it has no forward to call)."""
    if isinstance(module, (nn.ModuleList, nn.ModuleDict)):
        return False
    return bool(module._modules) and path in with_linear


def _longest_run(children: list[tuple[str, nn.Module]], is_block: list[bool]) -> list[tuple[str, nn.Module]]:
    """The longest run of consecutive blocks of one class (the decoder layers between embedding and head)."""
    best: list[tuple[str, nn.Module]] = []
    run: list[tuple[str, nn.Module]] = []
    for (name, child), block in zip(children, is_block, strict=True):
        if block and run and type(child) is type(run[-1][1]):
            run.append((name, child))
        else:
            run = [(name, child)] if block else []
        if len(run) > len(best):
            best = list(run)
    return best


def _single_block(path: str, module: nn.Module, with_linear: set[str]) -> BlockStack | None:
    """A list holding one block: a stack of its own when its class also forms a stack elsewhere (a one-layer
    prelude or coda around a looped core), decided by :func:`block_stacks`."""
    children = [(name, child) for name, child in module._modules.items() if child is not None]
    if _container_kind(module) not in ("ModuleList", "Sequential") or len(children) != 1:
        return None
    name, child = children[0]
    if not _is_block(_join(path, name), child, with_linear):
        return None
    return BlockStack(
        path=path,
        block_class=type(child).__name__,
        count=1,
        container=_container_kind(module) or "custom",
        linear_params=0,
        blocks=[_join(path, name)],
        modality=_modality(path),
    )


def _as_stack(path: str, module: nn.Module, with_linear: set[str]) -> BlockStack | None:
    kind = _container_kind(module)
    children = [(name, child) for name, child in module._modules.items() if child is not None]
    if len(children) < 2:
        return _single_block(path, module, with_linear)
    is_block = [_is_block(_join(path, name), child, with_linear) for name, child in children]
    partial = False
    if kind is None or not all(is_block):
        # A mixed container (embedding, blocks, head in one Sequential) or a custom module: the run of blocks
        # of one class within it; a custom module's run counts only once the forward is seen to chain it.
        run = _longest_run(children, is_block)
        if len(run) < 2:
            return None
        partial, children = len(run) < len(children), run
    classes = list(dict.fromkeys(type(child).__name__ for _, child in children))
    if len(classes) > 1 and kind not in ("ModuleList", "Sequential", "numbered"):
        return None
    return BlockStack(
        path=path,
        block_class="|".join(classes),
        count=len(children),
        container=kind or "custom",
        linear_params=0,
        blocks=[_join(path, name) for name, _ in children],
        modality=_modality(path),
        partial=partial,
        structural_only=kind is None,
    )


def block_stacks(
    model: nn.Module, weights: list[LinearWeight] | None = None, *, with_custom: bool = False
) -> list[BlockStack]:
    """Repeated-block stacks of ``model`` in registration order; blocks nested in a stack are part of it.

    ``with_custom``: also return runs of blocks in custom containers (``structural_only``), candidates that
    :mod:`scaffold.inspection.stack_chain` keeps only where the forward runs them as a chain.
    """
    weights = linear_weights(model) if weights is None else weights
    with_linear = _with_linear(weights)
    stacks: list[BlockStack] = []

    def visit(path: str, module: nn.Module) -> None:
        stack = _as_stack(path, module, with_linear) if path else None
        if stack is not None and (with_custom or not stack.structural_only):
            stacks.append(stack)
            if not stack.partial and stack.count >= 2:
                return
        # a mixed container: the blocks are the stack, its other children may hold stacks; a one-block list is
        # only a candidate (see _with_single_blocks): what its block holds is visited too
        inside = set(stack.blocks) if stack is not None and stack.count >= 2 else set()
        for name, child in module._modules.items():
            child_path = _join(path, name)
            if child is not None and child_path in with_linear and child_path not in inside:
                visit(child_path, child)

    visit("", model)
    stacks = _with_single_blocks(stacks)
    for stack in stacks:
        stack.linear_params = sum(w.numel for w in weights if any(w.path.startswith(b + ".") for b in stack.blocks))
    return stacks


def _with_single_blocks(stacks: list[BlockStack]) -> list[BlockStack]:
    """Keep a one-block list only where its block class also forms a stack of two or more blocks; a kept one
    holds the stacks found inside its block (it is the stack), a dropped one leaves them."""
    classes = {name for stack in stacks if stack.count >= 2 for name in stack.block_classes}
    singles = [s for s in stacks if s.count == 1 and s.block_class in classes]
    inside = [s.blocks[0] + "." for s in singles]
    kept = [s for s in stacks if s.count >= 2 or s in singles]
    return [s for s in kept if not any(s.path.startswith(prefix) for prefix in inside)]


def stack_of(path: str, stacks: list[BlockStack]) -> BlockStack | None:
    """The stack a module path lies in, if any."""
    for stack in stacks:
        if any(path == block or path.startswith(block + ".") for block in stack.blocks):
            return stack
    return None


def stack_members(model: nn.Module, paths: list[str]) -> dict[str, list[str]]:
    """Block paths of each stack path: only the run of blocks where the container also holds other children."""
    found = {s.path: s.blocks for s in block_stacks(model, with_custom=True)}
    return {
        path: found.get(path) or [f"{path}.{name}" for name, _ in model.get_submodule(path).named_children()]
        for path in paths
    }
