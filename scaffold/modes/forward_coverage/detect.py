"""Block stacks the model's default forward never runs (MTP/draft towers, talkers, unused decoders).

AutoRound caches block inputs by running ``model.forward`` on calibration text; a stack the forward
never reaches gets no inputs, so its weights stay unquantized (or quantization stops there).
"""

from __future__ import annotations

from torch import nn

from scaffold.inspection.context import InspectContext, tiny_or_none
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.inspection.probes import (
    CallRecorder,
    Stack,
    find_stacks,
    forward_params,
    record_block_calls,
    run_forward,
    tiny_speed,
)


def _width(module: nn.Module) -> int | None:
    """Input width of a block: ``in_features`` of its first linear layer."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            return sub.in_features
    return None


def _hidden_width(recorder: CallRecorder, stack: Stack) -> int | None:
    call = recorder.first(stack.blocks[0])
    value = call.hidden if call else None
    return int(value.shape[-1]) if hasattr(value, "shape") and len(value.shape) else None


def _finding(model: nn.Module, stack: Stack, reached: list[Stack], recorder: CallRecorder) -> Finding:
    block = model.get_submodule(stack.blocks[0])
    params = forward_params(block)
    twin = next((r for r in reached if forward_params(model.get_submodule(r.blocks[0])) == params), None)
    width = _width(block)
    reference = twin or (reached[0] if reached else None)
    hidden = _hidden_width(recorder, reference) if reference else None
    return Finding(
        mode=Mode.FORWARD_COVERAGE,
        severity=Severity.SILENT,
        summary=f"{stack.path} ({stack.count} x {stack.block_class}) is never run by model.forward, "
        "so AutoRound caches no inputs for it and leaves its weights unquantized",
        fix="run the stack in a calibration forward (a wrapper forward feeding it the hidden states"
        + (f" like {twin.path}" if twin else "")
        + "), or quantize it separately / ignore it explicitly",
        modules=[stack.path],
        classes=[stack.block_class],
        evidence={
            "reached": [r.path for r in reached],
            "unreached": [stack.to_dict()],
            "same_signature_as": twin.path if twin else None,
            "hidden_size_match": bool(width is not None and hidden is not None and width == hidden),
            "block_params": params,
        },
        probe="tiny",
    )


def detect(ctx: InspectContext) -> list[Finding]:
    tiny = tiny_or_none(ctx)
    if tiny is None:
        return []
    stacks = find_stacks(tiny.model)
    text = [s for s in stacks if s.modality == "text"]
    skipped = [s.path for s in stacks if s.modality != "text"]
    if skipped:
        ctx.notes.append(f"forward_coverage: not probing non-text stacks {skipped} (AutoRound skips them by default)")
    if not text:
        return []
    blocks = [block for s in text for block in s.blocks]
    try:
        with record_block_calls(tiny.model, blocks) as recorder, tiny_speed():
            run_forward(tiny.model, tiny.inputs)
    except Exception as exc:  # noqa: BLE001 - a probe that cannot run is a note, not a crash
        ctx.notes.append(f"forward_coverage: the tiny forward failed, probe skipped: {type(exc).__name__}: {exc}")
        return []
    reached = [s for s in text if any(recorder.reached(b) for b in s.blocks)]
    return [_finding(tiny.model, s, reached, recorder) for s in text if s not in reached]
