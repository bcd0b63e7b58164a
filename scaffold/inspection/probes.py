"""Helpers for dynamic probes: find block stacks, record what each block is called with, compare inputs.

Everything here runs on the tiny random instance (``ctx.tiny()``), never on the meta skeleton.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from scaffold.inspection.hooks import ModuleCall, capture_calls


@dataclass(frozen=True)
class Stack:
    """A repeated-block container: ``path`` holds ``count`` blocks of ``block_class``."""

    path: str
    block_class: str
    count: int
    blocks: tuple[str, ...]  # full module paths of the blocks, in order
    modality: str = "text"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "block_class": self.block_class, "count": self.count}


def find_stacks(model: nn.Module) -> list[Stack]:
    """Block stacks of ``model`` as ``scaffold.inspection.coverage.block_stacks`` finds them, with their block paths."""
    from scaffold.inspection.coverage import block_stacks

    return [
        Stack(s.path, s.block_class, s.count, tuple(s.blocks), getattr(s, "modality", "text"))
        for s in block_stacks(model)
    ]


def forward_params(module: nn.Module) -> list[str]:
    """Names of the explicit parameters of ``module.forward`` (no ``*args`` / ``**kwargs``)."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


@dataclass
class BlockCall:
    """One call of a block: its inputs by parameter name (positional ones named from the signature) and output."""

    path: str
    inputs: dict[str, Any]
    output: Any = None
    hidden_name: str | None = None  # the first forward parameter: the hidden states AutoRound chains

    @property
    def hidden(self) -> Any:
        return self.inputs.get(self.hidden_name) if self.hidden_name else None


@dataclass
class CallRecorder:
    """Block calls recorded by :func:`record_block_calls`, by block path, in call order."""

    calls: dict[str, list[BlockCall]] = field(default_factory=dict)

    def first(self, path: str) -> BlockCall | None:
        found = self.calls.get(path)
        return found[0] if found else None

    def reached(self, path: str) -> bool:
        return bool(self.calls.get(path))


def _block_call(module: nn.Module, call: ModuleCall) -> BlockCall:
    names = forward_params(module)
    inputs = {names[i] if i < len(names) else f"arg{i}": value for i, value in enumerate(call.args)}
    inputs.update(call.kwargs)
    return BlockCall(call.path, inputs, call.output, hidden_name=names[0] if names else None)


@contextlib.contextmanager
def record_block_calls(
    model: nn.Module, block_paths: list[str], outputs: bool = False, copy_inputs: bool = False
) -> Iterator[CallRecorder]:
    """Record every call of the modules at ``block_paths`` while the ``with`` body runs the model.

    The calls are captured by :func:`scaffold.inspection.hooks.capture_calls` and land in the recorder, their
    inputs named, when the body ends; ``copy_inputs=True`` keeps the inputs as they were at the call (a model loop
    may update one tensor in place for every block).
    """
    recorder = CallRecorder()
    with capture_calls(model, block_paths, outputs=outputs, copy_inputs=copy_inputs) as log:
        yield recorder
    for path, calls in log.calls.items():
        module = model.get_submodule(path)
        recorder.calls[path] = [_block_call(module, call) for call in calls]


def describe(value: Any) -> str:
    """A short type/shape description of a block input, e.g. ``Tensor[2, 8, 64] float32``."""
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"Tensor[{', '.join(str(d) for d in value.shape)}] {dtype}" if value.dim() else f"Tensor[] {dtype}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v) for v in value[:3]) + (", ..." if len(value) > 3 else "")
        return f"{type(value).__name__}({inner})"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    return type(value).__name__


def same_value(a: Any, b: Any) -> bool:
    """Whether two block inputs are the same object or hold equal tensors (recursively for tuples/lists)."""
    if a is b:
        return True
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (bool, int, float, str)) and isinstance(b, type(a)):
        return a == b
    return False


def tensors_in(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v)]
    return []


def batch_size_of(inputs: dict[str, Any]) -> int:
    ids = inputs.get("input_ids")
    if ids is None:
        ids = next((v for v in inputs.values() if isinstance(v, torch.Tensor) and v.dim() >= 1), None)
    return int(ids.shape[0]) if ids is not None else 1


def calibration_samples(inputs: dict[str, Any], count: int = 2) -> list[dict[str, Any]]:
    """``count`` one-row forward inputs made from the tiny batch, as AutoRound's calibration loop feeds them.

    Rows beyond the batch are the first row rolled along the sequence. An ``attention_mask`` gets its last
    position zeroed up front, as AutoRound's ``calib`` does in place, so the reference forward sees the same mask.
    """
    batch = batch_size_of(inputs)
    samples: list[dict[str, Any]] = []
    for row in range(count):
        sample: dict[str, Any] = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == batch:
                piece = value[row % batch : row % batch + 1].clone()
                if row >= batch and key.endswith("input_ids"):
                    piece = torch.roll(piece, shifts=row, dims=-1)
                sample[key] = piece
            else:
                sample[key] = value
        if isinstance(sample.get("attention_mask"), torch.Tensor) and sample["attention_mask"].dim() == 2:
            sample["attention_mask"][:, -1] = 0
        samples.append(sample)
    return samples


@contextlib.contextmanager
def tiny_speed() -> Iterator[None]:
    """Run tiny-model work on one thread, with existing objects moved out of the collector's reach.

    AutoRound calls ``gc.collect()`` several times per setup and caching pass; in a process that has
    imported torch and transformers each call walks millions of objects (seconds on a busy machine).
    ``gc.freeze`` leaves the semantics alone: objects created inside are still collected. Tiny matmuls
    are fastest on one thread (several threads on shared cores mostly wait for each other).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        torch.set_num_threads(threads)


def run_forward(model: nn.Module, inputs: dict[str, Any]) -> Any:
    """The model's default forward without a KV cache, as AutoRound's calibration calls it."""
    with torch.no_grad():
        try:
            return model(**inputs, use_cache=False)
        except TypeError as exc:
            if "use_cache" not in str(exc):
                raise
            return model(**inputs)
