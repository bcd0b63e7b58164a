"""Deterministic weights: seed the model's own initialisation, then repair what it left uninitialised."""

from __future__ import annotations

import zlib

import torch
from torch import nn

INIT_STD = 0.02
# A freshly initialised weight above this is garbage from torch.empty, not an init scheme.
GARBAGE_ABS = 1e4


def _generator(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def _is_garbage(tensor: torch.Tensor) -> bool:
    if not tensor.is_floating_point() or tensor.numel() == 0 or tensor.is_meta:
        return False
    data = tensor.detach()
    return not bool(torch.isfinite(data).all()) or bool((data.abs() > GARBAGE_ABS).any())


@torch.no_grad()
def repair_uninitialised(model: nn.Module, seed: int) -> list[str]:
    """Re-initialise parameters holding NaN/inf/huge values and buffers holding NaN; return their names.

    Buffers may legitimately hold ``-inf`` or large values (attention masks), so only NaN counts there.
    """
    repaired = []
    for name, param in model.named_parameters():
        if _is_garbage(param):
            param.copy_(torch.randn(param.shape, generator=_generator(seed, name)) * INIT_STD)
            repaired.append(name)
    for name, buffer in model.named_buffers():
        if buffer.is_floating_point() and buffer.numel() and torch.isnan(buffer).any():
            buffer.copy_(torch.randn(buffer.shape, generator=_generator(seed, name)) * INIT_STD)
            repaired.append(name)
    return repaired
