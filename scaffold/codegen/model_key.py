"""Key the adaptation by the model type AutoRound resolves for the loaded model, not by config.json's name.

``SPECIAL_MULTIMODAL_BLOCK`` and ``_handle_special_model`` look a model up by ``resolve_model_type`` (the
architecture through ``ARCHITECTURE_MODEL_TYPE_MAP``, else ``config.model_type``); ``ModelTypeMatcher`` and
``BUILTIN_MODULES`` read ``config.model_type`` itself. A remote-code config class that declares no
``model_type`` (Ling-V2's ``BailingMoeV2Config``) carries config.json's name only when read from that file; a
config rebuilt from ``to_dict()`` (a saved export, the tiny instance) carries the class's ``''``, and
registrations keyed by the name never fire. Then the architecture is mapped to the plan's key in
``ARCHITECTURE_MODEL_TYPE_MAP`` (AutoRound resolves it first) and ignore rules match the architecture.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

from scaffold import autoround_api
from scaffold.codegen import py_str
from scaffold.plan.model import DictEntry, HandlerBranch, Plan

if TYPE_CHECKING:
    from scaffold.inspection.context import InspectContext

UTILS_MODEL = "auto_round/utils/model.py"
REGISTRY = "ARCHITECTURE_MODEL_TYPE_MAP"
# Registries AutoRound looks up by ``resolve_model_type`` (the map reaches them) and by ``config.model_type``.
RESOLVED = ("SPECIAL_MULTIMODAL_BLOCK",)
RAW = ("BUILTIN_MODULES",)


def loaded_model_types(ctx: InspectContext | None) -> set[str]:
    """``config.model_type`` values a loaded model can carry (what ``ModelTypeMatcher`` reads): the instance's
    (config.json read by ``from_pretrained``) and its class's (a config rebuilt from ``to_dict()``)."""
    if ctx is None:
        return set()
    return {str(getattr(ctx.config, "model_type", None) or ""), str(getattr(type(ctx.config), "model_type", "") or "")}


def built_model_types(ctx: InspectContext) -> set[str]:
    """``config.model_type`` of the model as built (``BUILTIN_MODULES`` / ``is_custom_model`` read it): a text model
    class built from a multimodal checkpoint carries its text config's type (``llama4_text``, not ``llama4``)."""
    config = ctx.meta_model.config
    found = {str(t) for t in (getattr(config, "model_type", ""), getattr(type(config), "model_type", "")) if t}
    return found or {ctx.target.model_type}


def built_resolved_type(ctx: InspectContext) -> str:
    """What ``resolve_model_type`` gives for the model as built (``_handle_special_model`` and the multimodal
    registries look it up): ``qwen3_5_text`` for the text model of target ``qwen3_5``."""
    return autoround_api.resolve_model_type(ctx.tiny().model.config)


def resolved_model_types(plan: Plan, ctx: InspectContext) -> set[str]:
    """What AutoRound's ``resolve_model_type`` gives for each of :func:`loaded_model_types`."""
    archs = architectures(plan, ctx)
    return {
        autoround_api.resolve_model_type(SimpleNamespace(architectures=archs, model_type=model_type))
        for model_type in loaded_model_types(ctx)
    }


def plan_key(model_type: str, ctx: InspectContext | None) -> str:
    """What registrations are keyed by: AutoRound's resolved type where it resolves one, else ``model_type``."""
    if ctx is None:
        return model_type
    return autoround_api.resolve_model_type(ctx.config) or model_type


def architectures(plan: Plan, ctx: InspectContext | None) -> list[str]:
    """The loaded config's ``architectures`` (what ``ArchitectureMatcher`` and the map read), else the class."""
    found = getattr(ctx.config, "architectures", None) if ctx is not None else None
    return [str(a) for a in found] if isinstance(found, (list, tuple)) and found else [plan.model_class]


def generate(plan: Plan, ctx: InspectContext | None) -> None:
    """Map the architecture to ``plan.model_type`` where AutoRound resolves another type for the loaded model."""
    if ctx is None or not plan.items or loaded_model_types(ctx) == {plan.model_type}:
        return
    keyed = [e for e in plan.edits if isinstance(e, HandlerBranch) or getattr(e, "registry", None) in RESOLVED]
    raw = [e for e in plan.edits if getattr(e, "registry", None) in RAW and e.key == plan.model_type]
    item = plan.items[0]
    if raw:
        item.todos.append(
            f"`{raw[0].registry}` is looked up by config.model_type, which is {sorted(loaded_model_types(ctx))} "
            f"for a loaded model, not only {plan.model_type!r}: key the entry by what the loaded config says"
        )
    if not keyed or resolved_model_types(plan, ctx) == {plan.model_type}:
        return
    names = architectures(plan, ctx)
    value = py_str(plan.model_type)
    plan.edits[:0] = [DictEntry(file=UTILS_MODEL, registry=REGISTRY, key=name, value=value) for name in names]
    item.generated.append(
        f"`{REGISTRY}[{py_str(names[0])}] = {py_str(plan.model_type)}` in {UTILS_MODEL}: a loaded model's "
        f"config.model_type can be {' or '.join(repr(t) for t in sorted(loaded_model_types(ctx)))} (the config "
        f"class declares {type(ctx.config).model_type!r}), so registrations keyed by {py_str(plan.model_type)} "
        "need AutoRound to resolve the architecture"
    )
