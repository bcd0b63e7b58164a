"""tied_weights_keys: a transformers 4.x list-style ``_tied_weights_keys`` that transformers 5 cannot save.

Remote code written for transformers 4.x declares ``_tied_weights_keys = ["lm_head.weight"]``: the weights tied
to the input embeddings. transformers 5 expects a ``{target: source}`` dict; its ``save_pretrained`` collects the
keys of every module (``_get_tied_weight_keys`` in ``modeling_utils.py``) with ``.keys()``, so the list raises
``AttributeError: 'list' object has no attribute 'keys'`` and stock AutoRound crashes saving its export. Found on
the meta skeleton: every module class whose attribute is a non-empty list or tuple, on transformers 5 or later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.versions import package_version, transformers_major


@dataclass
class ListStyleClass:
    """One module class with a list-style ``_tied_weights_keys`` and the dict transformers 5 expects instead."""

    name: str
    keys: list[str]
    source: str | None  # the input embedding weight, relative to the class's module (None: none found)
    modules: list[str] = field(default_factory=list)  # where its instances sit in the model

    @property
    def mapping(self) -> dict[str, str]:
        return {key: self.source for key in self.keys} if self.source else {}


def list_style_keys(module: nn.Module) -> list[str] | None:
    """The class's ``_tied_weights_keys`` when it is a non-empty list or tuple (what transformers 5 cannot read)."""
    keys = getattr(type(module), "_tied_weights_keys", None)
    return [str(key) for key in keys] if isinstance(keys, (list, tuple)) and keys else None


def input_embedding_weight(module: nn.Module) -> str | None:
    """The name, relative to ``module``, of its input embedding weight (what a 4.x list ties to)."""
    getter = getattr(module, "get_input_embeddings", None)
    try:
        embeddings = getter() if callable(getter) else None
    except (AttributeError, NotImplementedError):
        return None
    if not isinstance(embeddings, nn.Module) or not isinstance(getattr(embeddings, "weight", None), nn.Parameter):
        return None
    return next((f"{name}.weight" for name, sub in module.named_modules() if sub is embeddings and name), None)


def list_style_classes(model: nn.Module) -> list[ListStyleClass]:
    """Every module class of ``model`` whose ``_tied_weights_keys`` is list-style, in module order."""
    found: dict[str, ListStyleClass] = {}
    for path, module in model.named_modules():
        keys = list_style_keys(module)
        if keys is None:
            continue
        name = type(module).__name__
        if name not in found:
            found[name] = ListStyleClass(name, keys, input_embedding_weight(module))
        found[name].modules.append(path or "(the model)")
    return list(found.values())


def detect(ctx: InspectContext) -> list[Finding]:
    if transformers_major() < 5:
        return []  # transformers 4.x reads the list itself
    version = package_version("transformers")
    findings = []
    for cls in list_style_classes(ctx.meta_model):
        target = f"{{{', '.join(f'{k!r}: {cls.source!r}' for k in cls.keys)}}}" if cls.source else "a dict"
        findings.append(
            Finding(
                mode=Mode.TIED_WEIGHTS_KEYS,
                severity=Severity.FAILS,
                summary=f"{cls.name}._tied_weights_keys is a list ({cls.keys!r}, the transformers 4.x form); "
                f"transformers {version} expects a {{target: source}} dict, so save_pretrained raises "
                "AttributeError: 'list' object has no attribute 'keys' and stock AutoRound crashes saving the export",
                fix=f"convert {cls.name}._tied_weights_keys to {target} (tied to the input embeddings, what the list "
                "meant) when AutoRound loads the model (_handle_special_model)",
                modules=[m for m in cls.modules if m != "(the model)"],
                classes=[cls.name],
                evidence={
                    "class": cls.name,
                    "tied_weights_keys": cls.keys,
                    "source": cls.source,
                    "transformers": version,
                },
            )
        )
    return findings
