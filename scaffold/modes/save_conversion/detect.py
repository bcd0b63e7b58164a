"""save_conversion: a transformers 5 weight conversion whose reverse joins quantized layers when the export saves.

transformers 5 loads some checkpoints through a conversion mapping (``conversion_mapping.py``): e.g. sarvam_moe's
fused ``query_key_value`` is split into ``q_proj``/``k_proj``/``v_proj``, lara_mini's ``linear_attn.in_proj`` into
``in_proj_qkv``/``z``/``b``/``a``. ``save_pretrained`` applies the mapping in reverse (``revert_weight_conversion`` in
``core_model_loading.py``), so each split becomes a ``Concatenate`` of the layers' tensors. Once AutoRound has packed
those layers, their ``qweight``/``qzeros``/``scales`` have other shapes (``qweight`` is ``[in/8, out]``): ``torch.cat``
raises and stock AutoRound crashes saving its export. Found on the meta skeleton: every converter with several
targets whose targets are Linear layers, reverted on meta tensors of the packed shapes; only a reverse that raises
is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from scaffold.autoround_api import get_block_names
from scaffold.errors import first_line
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.measure.stock import STOCK_GROUP_SIZE
from scaffold.versions import package_version, transformers_major

PACK_BITS = 4


@dataclass
class Join:
    """One conversion whose reverse concatenates the tensors of quantized layers into one checkpoint tensor."""

    checkpoint: list[str]  # the converter's checkpoint-side pattern(s) (what the reverse writes)
    targets: list[str]  # its model-side patterns (the split layers)
    operations: list[str]  # the reverse operations, e.g. ["Concatenate"]
    layers: list[str] = field(default_factory=list)  # the model's Linear layers it joins
    error: str = ""  # what the reverse raised on the packed tensors


def save_conversions(model: nn.Module) -> list:
    """The transforms ``save_pretrained`` reverts for ``model`` (as ``revert_weight_conversion`` collects them)."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import PrefixChange

    conversions = getattr(model, "_weight_conversions", None)
    if conversions is None:
        try:
            conversions = get_model_conversion_mapping(model, add_legacy=False)
        except Exception:  # noqa: BLE001 - not a PreTrainedModel transformers can describe: nothing reverted
            return []
        conversions = [c for c in conversions if not isinstance(c, PrefixChange)]
    return list(conversions)


def packed_tensors(name: str, linear: nn.Linear) -> dict[str, torch.Tensor]:
    """Meta tensors shaped like AutoRound's GPTQ-style packing of ``linear`` (``auto_round:auto_gptq``)."""
    n_in, n_out = linear.in_features, linear.out_features
    per_int = 32 // PACK_BITS
    groups = math.ceil(n_in / STOCK_GROUP_SIZE)
    meta = {"device": "meta"}
    return {
        f"{name}.qweight": torch.empty(math.ceil(n_in / per_int), n_out, dtype=torch.int32, **meta),
        f"{name}.qzeros": torch.empty(groups, math.ceil(n_out / per_int), dtype=torch.int32, **meta),
        f"{name}.scales": torch.empty(groups, n_out, dtype=torch.float16, **meta),
    }


def autoround_blocks(model: nn.Module) -> list[str]:
    """The blocks AutoRound quantizes by default (``get_block_names``, no vision tower): where packed layers live."""
    try:
        return [name for stack in get_block_names(model) for name in stack]
    except Exception:  # noqa: BLE001 - AutoRound cannot name the blocks: nothing it would pack
        return []


def joined_layers(model: nn.Module) -> list[Join]:
    """Each many-target converter of ``model`` whose reverse fails on the packed tensors of the layers it joins."""
    if transformers_major() < 5:
        return []  # transformers 4.x saves under the model's own names
    from transformers.core_model_loading import WeightConverter, apply_converters, revert_weight_conversion

    blocks = autoround_blocks(model)
    linears = {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(name.startswith(f"{block}.") for block in blocks)
    }
    found = []
    for conversion in save_conversions(model):
        if not isinstance(conversion, WeightConverter) or len(conversion.target_patterns) < 2:
            continue
        reverse = conversion.reverse_transform()
        layers = [n for n in linears if apply_converters(f"{n}.weight", [reverse])[1] is not None]
        if not layers:
            continue
        state = {k: t for n in layers for k, t in packed_tensors(n, linears[n]).items()}
        saved = getattr(model, "_weight_conversions", None)
        model._weight_conversions = [conversion]
        try:
            revert_weight_conversion(model, state)
        except Exception as exc:  # noqa: BLE001 - the failure is what is reported
            ops = [type(op).__name__ for op in getattr(reverse, "operations", [])]
            sources = list(conversion._original_source_patterns)
            found.append(Join(sources, list(conversion._original_target_patterns), ops, layers, first_line(exc)))
        finally:
            if saved is None:
                del model._weight_conversions
            else:
                model._weight_conversions = saved
    return found


def detect(ctx: InspectContext) -> list[Finding]:
    version = package_version("transformers")
    findings = []
    for join in joined_layers(ctx.meta_model):
        ops = "/".join(join.operations) or "its reverse"
        summary = (
            f"transformers {version} saves {ctx.model_class} through its weight conversion in reverse: "
            f"{ops} joins {', '.join(join.targets)} back into the checkpoint tensor {', '.join(join.checkpoint)}; "
            f"the packed qweight/qzeros/scales of {len(join.layers)} quantized layers ({join.layers[0]}, ...) "
            f"cannot be joined ({join.error}), so stock AutoRound crashes saving the export"
        )
        findings.append(
            Finding(
                mode=Mode.SAVE_CONVERSION,
                severity=Severity.FAILS,
                summary=summary,
                fix="save the quantized export under the model's own module names: give the model an empty "
                "_weight_conversions when AutoRound loads it (_handle_special_model), so save_pretrained reverts "
                "nothing, as for a model without conversions",
                modules=join.layers,
                classes=[ctx.model_class],
                evidence={
                    "checkpoint": join.checkpoint,
                    "targets": join.targets,
                    "operations": join.operations,
                    "layers": join.layers,
                    "error": join.error,
                    "transformers": version,
                },
            )
        )
    return findings
