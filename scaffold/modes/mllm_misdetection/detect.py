"""Would AutoRound's ``is_mllm_model`` call a text-only model multimodal (and then demand a processor)?"""

from __future__ import annotations

import json
from dataclasses import dataclass

from torch import nn

from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode, Severity


@dataclass
class MllmVerdict:
    multimodal: bool
    reason: str | None  # what matched, in AutoRound's order of checks


def _mm_keys() -> tuple[list[str], set[str]]:
    from auto_round.utils.common import MM_KEYS
    from auto_round.utils.model import _LLM_ONLY_MODEL_TYPES

    return list(MM_KEYS), set(_LLM_ONLY_MODEL_TYPES)


def _config_keys(ctx: InspectContext) -> tuple[list[str], str]:
    """Top-level keys of the config.json AutoRound would read (the saved diff for an in-process config)."""
    folder = ctx.target.model_dir
    if folder is not None and (folder / "config.json").is_file():
        return list(json.loads((folder / "config.json").read_text(encoding="utf-8"))), "config.json"
    return list(ctx.config.to_diff_dict()), "config.json (as save_pretrained writes it)"


def autoround_mllm_verdict(ctx: InspectContext) -> MllmVerdict:
    """Re-run ``auto_round.utils.model.is_mllm_model``'s checks on the target without any download."""
    mm_keys, llm_only = _mm_keys()
    if ctx.target.model_type in llm_only:
        return MllmVerdict(False, None)
    folder = ctx.target.model_dir
    for name in ("preprocessor_config.json", "processor_config.json"):
        if folder is not None and (folder / name).is_file():
            return MllmVerdict(True, f"{name} exists in the model folder")
    keys, source = _config_keys(ctx)
    for key in keys:
        hit = next((k for k in mm_keys if k in key), None)
        if hit:
            return MllmVerdict(True, f"{source} key '{key}' contains '{hit}'")
    for name, _ in ctx.meta_model.named_modules():
        hit = next((k for k in mm_keys if k in name), None)
        if hit:
            return MllmVerdict(True, f"module name '{name}' contains '{hit}'")
    return MllmVerdict(False, None)


def _multimodal_parts(model: nn.Module, mm_keys: list[str]) -> list[str]:
    """Modules with weights whose name or class names another modality: what makes a model really multimodal."""
    for name, module in model.named_modules():
        label = f"{name} {type(module).__name__}".lower()
        if name and any(k in label for k in mm_keys) and any(True for _ in module.parameters(recurse=False)):
            return [name]
    return []


def detect(ctx: InspectContext) -> list[Finding]:
    verdict = autoround_mllm_verdict(ctx)
    if not verdict.multimodal:
        return []
    mm_keys, _ = _mm_keys()
    parts = _multimodal_parts(ctx.meta_model, mm_keys)
    if parts:
        return []  # really multimodal: AutoRound is right
    return [
        Finding(
            mode=Mode.MLLM_MISDETECTION,
            severity=Severity.FAILS,
            summary=f"AutoRound would treat this text-only model as multimodal ({verdict.reason}) "
            "and demand a processor",
            fix=f"exempt model_type '{ctx.target.model_type}' from is_mllm_model (add it to _LLM_ONLY_MODEL_TYPES)",
            classes=[type(ctx.meta_model).__name__],
            evidence={"reason": verdict.reason, "model_type": ctx.target.model_type},
        )
    ]
