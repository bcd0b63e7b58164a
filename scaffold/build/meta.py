"""Build a model skeleton on the meta device: no weights, no initialisation cost, any size."""

from __future__ import annotations

import contextlib
import re
import warnings
import weakref
from typing import Any

import torch
from torch import nn

from scaffold.errors import ScaffoldError
from scaffold.resolve.diagnose import diagnose_load_error, load_stage

# Auto classes tried in order: AutoRound quantizes language models first, multimodal ones next.
AUTO_CLASS_ORDER = (
    "AutoModelForCausalLM",
    "AutoModelForImageTextToText",
    "AutoModelForVision2Seq",
    "AutoModelForSeq2SeqLM",
    "AutoModelForTextToWaveform",
    "AutoModel",
)


def pick_auto_class(config: Any) -> str:
    """Name of the transformers auto class that builds the most complete model for ``config``."""
    import transformers

    auto_map = getattr(config, "auto_map", None) or {}
    for name in AUTO_CLASS_ORDER:
        if name in auto_map:
            return name
    for name in AUTO_CLASS_ORDER:
        auto = getattr(transformers, name, None)
        mapping = getattr(auto, "_model_mapping", None)
        if mapping is None:
            continue
        with contextlib.suppress(Exception):
            if type(config) in mapping:
                return name
    raise ScaffoldError(
        f"no transformers auto class builds a model for config {type(config).__name__}"
        + (f" (auto_map has {sorted(auto_map)})" if auto_map else ""),
        "build",
    )


def instantiate(config: Any, *, trust_remote_code: bool = False, auto_class: str | None = None) -> nn.Module:
    """Instantiate ``config`` with its auto class on the current default device, in float32."""
    import transformers

    name = auto_class or pick_auto_class(config)
    auto = getattr(transformers, name)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # `dtype` since transformers 4.56; `torch_dtype` is deprecated and logs a warning on every call
            return auto.from_config(config, dtype=torch.float32, **kwargs)
        except TypeError as exc:
            if "dtype" not in str(exc):
                raise
            return auto.from_config(config, **kwargs)


# Models built on the CPU from a shrunk config because their code cannot run on the meta device: the one-line note.
CPU_FALLBACK_NOTES: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()


def meta_only_failure(exc: BaseException) -> bool:
    """The model code failed only because its tensors are on the meta device (``.item()``, data-dependent code)."""
    return re.search(r"\bmeta\b", str(exc), re.IGNORECASE) is not None


def _build_shrunk_on_cpu(config: Any, trust_remote_code: bool, exc: BaseException) -> nn.Module | None:
    from scaffold.errors import first_line
    from scaffold.tiny import build_tiny

    try:
        model = build_tiny(config, trust_remote_code=trust_remote_code).model
    except Exception:  # noqa: BLE001 - the caller reports the meta-build error
        return None
    CPU_FALLBACK_NOTES[model] = (
        f"built on the CPU from a shrunk config: the model code cannot be built on the meta device ({first_line(exc)})"
    )
    return model


def build_meta(config: Any, *, trust_remote_code: bool = False, where: str = "") -> nn.Module:
    """Build the full-size model on the meta device, or raise a one-line :class:`ScaffoldError`.

    Model code that cannot run on the meta device (e.g. ``.item()`` in ``__init__``) is built for real on the
    CPU from a shrunk copy of the config instead (:data:`CPU_FALLBACK_NOTES` says so).
    """
    try:
        with torch.device("meta"):
            model = instantiate(config, trust_remote_code=trust_remote_code)
    except ScaffoldError:
        raise
    except (ImportError, SyntaxError) as exc:
        raise diagnose_load_error(exc, stage="import", where=where) from exc
    except Exception as exc:  # noqa: BLE001 - any failure of the model's own code
        fallback = _build_shrunk_on_cpu(config, trust_remote_code, exc) if meta_only_failure(exc) else None
        if fallback is None:
            raise diagnose_load_error(exc, stage=load_stage(exc, "build"), where=where) from exc
        model = fallback
    model.eval()
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_modules(model: nn.Module) -> int:
    return sum(1 for _ in model.modules())
