"""The tiny random instance every dynamic probe and generated test runs on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class TinyModel:
    model: nn.Module  # float32, eval mode, CPU, deterministic random weights
    config: Any  # the shrunk PretrainedConfig the model was built from
    auto_class: str  # transformers auto class used (AutoModelForCausalLM, ...)
    inputs: dict[str, torch.Tensor]  # a forward-ready batch holding only keys the forward accepts
    strategy: str  # name of the shrink strategy that produced a working model
    changes: dict[str, Any] = field(default_factory=dict)  # "attr.path" -> [old, new]
    # special token ids the forward looks up in every sequence, at its end (the calibration tokenizer appends them)
    suffix_ids: tuple[int, ...] = ()

    def forward(self, **overrides: Any) -> Any:
        """Run the model on ``inputs`` without a KV cache."""
        kwargs = {**self.inputs, **overrides}
        with torch.no_grad():
            return self.model(**kwargs)

    def describe(self) -> dict[str, Any]:
        return {
            "model_class": type(self.model).__name__,
            "auto_class": self.auto_class,
            "strategy": self.strategy,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "changes": {k: list(v) if isinstance(v, tuple) else v for k, v in self.changes.items()},
            **({"suffix_ids": list(self.suffix_ids)} if self.suffix_ids else {}),
        }
