"""Ground truth: stock AutoRound on the tiny instance, counted on its export.

Every verdict of this tool (inspect's, the survey's, a generated test's) must agree with what this run
measures: does ``AutoRound(...).quantize()`` + ``save_quantized`` finish, and what share of the block
weights did the export pack? Layers AutoRound never packs on any architecture are listed and left out of the
share: a dimension not a multiple of 32 (its ``_check_divisible_by_32``, applied at export; on a shrunk tiny
instance an artifact of the shrink, on the real model reported from the real shapes by inspect's static
coverage) and convolutions (W4A16 quantizes linear layers; mamba's ``conv1d`` is not a failure).
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scaffold.errors import cause_line, first_line

OK, CRASH, UNDER_QUANTIZED = "ok", "crash", "under-quantized"
FULL_SHARE = 0.99  # below this share of the block weights the stock run under-quantizes
STOCK_GROUP_SIZE = 32  # the tiny instance's 64-wide layers quantize with groups of 32
# Stock AutoRound, tiny calibration. torch.compile is off: AutoRound turns it on for MoE models even at
# iters=1, and compiling on a CPU takes minutes without telling anything about the architecture.
STOCK_SETTINGS: dict[str, Any] = {
    "scheme": "W4A16",
    "iters": 1,
    "nsamples": 2,
    "seqlen": 32,
    "batch_size": 2,
    "enable_torch_compile": False,
}


@dataclass
class StockRun:
    """What stock AutoRound did with the tiny instance."""

    status: str  # ok | crash | under-quantized
    share: float | None = None  # packed share of the block weights (``not_counted`` left out)
    unpacked: list[str] = field(default_factory=list)  # block modules whose weights the export left plain
    unmapped: list[str] = field(default_factory=list)  # packed tensors not mapped back to a model parameter
    not_counted: list[str] = field(default_factory=list)  # never packed by AutoRound (shape / convolution)
    exception: str | None = None  # "Type: message" of a crash
    raised_at: str | None = None  # "file:line in function" of the deepest frame outside torch
    amp_dtype: str | None = None  # what AutoRound tuned in on this host

    @property
    def ok(self) -> bool:
        return self.status == OK

    def detail(self, limit: int = 4) -> str:
        """One line for a survey row or a finding."""
        if self.status == CRASH:
            return f"{self.exception}" + (f" (raised at {self.raised_at})" if self.raised_at else "")
        parts = [
            _listed("unpacked", self.unpacked, limit),
            _listed("packed but not mapped to the model", self.unmapped, limit),
            _listed("not counted (shape not divisible by 32, or a convolution)", self.not_counted, limit),
        ]
        return "; ".join(p for p in parts if p)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _listed(what: str, names: list[str], limit: int) -> str:
    if not names:
        return ""
    return f"{what}: " + ", ".join(names[:limit]) + (" ..." if len(names) > limit else "")


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)', re.MULTILINE)


def raised_at(traceback_text: str) -> str | None:
    """Where a formatted traceback was raised: its deepest frame outside torch's own code (model or AutoRound)."""
    frames = list(_FRAME.finditer(traceback_text))
    inside = [f for f in frames if "/torch/" not in f["file"].replace("\\", "/")] or frames
    if not inside:
        return None
    frame = inside[-1]
    parts = Path(frame["file"]).parts
    short = "/".join(parts[-3:]) if "site-packages" in parts else frame["file"]
    return f"{short}:{frame['line']} in {frame['func']}"


def text_block_names(model: Any) -> tuple[list[list[str]], list[str]]:
    """Blocks of the model's text stacks (found structurally, not by AutoRound) and, as exact-name regexes, the
    layers AutoRound's predefined ignore rules keep in float."""
    from scaffold.inspection.coverage import block_stacks

    stacks = [stack for stack in block_stacks(model) if stack.modality == "text"] or block_stacks(model)
    return [list(stack.blocks) for stack in stacks], [rf"^{re.escape(name)}$" for name in ignored_layer_names(model)]


def ignored_layer_names(model: Any) -> list[str]:
    """The layers AutoRound keeps in float under its predefined ignore rules for ``model``, matched as AutoRound
    matches them (``get_fp_layer_names``: substrings; "layers.1" widened to "layers.1." as its resolver does)."""
    from auto_round.compressors.layer_config_resolver import get_fp_layer_names

    from scaffold.autoround_api import quiet_autoround
    from scaffold.inspection.coverage import predefined_ignore_layers

    patterns = [p for p in predefined_ignore_layers(model) if p]
    names = [n for n, _ in model.named_modules()]
    patterns = [p + "." if p[-1].isdigit() and any(p + "." in n for n in names) else p for p in patterns]
    known = set(names)
    with quiet_autoround():
        return sorted({n for n in get_fp_layer_names(model, patterns) if n in known})


def shape_skipped_layers(model: Any, scheme: str = "W4A16") -> list[str]:
    """Layers AutoRound's export leaves in float because a weight dimension is not a multiple of 32."""
    from auto_round.export.formats.base import _check_divisible_by_32
    from auto_round.schemes import preset_name_to_scheme

    return sorted(_check_divisible_by_32(preset_name_to_scheme(scheme), model, {}) or {})


def not_counted(model: Any) -> dict[str, str]:
    """Block modules left out of the share, with why: AutoRound never packs them, on any architecture."""
    from torch import nn

    reasons = {name: "a dimension not divisible by 32" for name in shape_skipped_layers(model)}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            reasons.setdefault(name, "a convolution (AutoRound quantizes linear layers)")
    return reasons


def run_stock(tiny: Any, out_dir: Path, *, amp: bool | None = None, checkpoint_config: Any = None) -> StockRun:
    """Stock AutoRound (no adaptation imported) on a copy of the tiny model, and the packed share of its export.

    ``amp=None`` keeps AutoRound's own choice for this host (bf16 autocast where supported); ``False`` runs it in
    float32, as inspect's probe does so that its verdict is the same on every machine. ``checkpoint_config`` is the
    target's own config (default: the tiny one), written where AutoRound looks for the checkpoint's config.json.
    """
    import torch

    from scaffold.measure.quantize import count_packed, run_autoround
    from scaffold.testkit import tokenizer_for
    from scaffold.tiny.tokenizer import calibration_texts

    torch.manual_seed(0)
    model = copy.deepcopy(tiny.model)
    original = copy.deepcopy(model)  # AutoRound packs ``model`` in place
    as_loaded_from_a_folder(model, checkpoint_config or tiny.config, out_dir.parent / "model")
    blocks, _ = text_block_names(model)
    run = run_autoround(
        model,
        tokenizer_for(tiny),
        calibration_texts(),
        out_dir,
        group_size=STOCK_GROUP_SIZE,
        raise_errors=False,
        **STOCK_SETTINGS,
        **({} if amp is None else {"amp": amp}),
    )
    if not run.ok:
        exception = f"{run.error_type}: {cause_line(run.error or '', 300)}"
        where = raised_at(run.error_traceback or "")
        return StockRun(CRASH, exception=exception, raised_at=where, amp_dtype=run.amp_dtype)
    try:
        counted = counted_coverage(original, count_packed(out_dir), blocks)
    except Exception as exc:  # noqa: BLE001 - an export that cannot be read is a crash of the stock run
        return StockRun(CRASH, exception=f"export unreadable: {first_line(exc)}", amp_dtype=run.amp_dtype)
    return StockRun(
        OK if counted.share >= FULL_SHARE else UNDER_QUANTIZED,
        share=round(counted.share, 4),
        unpacked=counted.unpacked,
        unmapped=counted.unmapped,
        not_counted=counted.not_counted,
        amp_dtype=run.amp_dtype,
    )


def as_loaded_from_a_folder(model: Any, config: Any, folder: Path) -> None:
    """Give ``model`` a checkpoint folder holding the target's ``config.json``, as ``from_pretrained`` would.

    AutoRound reads that folder (``is_mllm_model`` checks the keys of the config there, the target's whole config,
    not the in-process model's text config), so a stock run without it would miss what every real user meets.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    model.config._name_or_path = str(folder)
    model.name_or_path = str(folder)


@dataclass
class CountedCoverage:
    share: float  # packed share of the counted block weights
    unpacked: list[str]
    unmapped: list[str]
    not_counted: list[str]  # block modules left out: AutoRound's ignore rules, shape skips, convolutions


def counted_coverage(model: Any, packed: Any, blocks: list[list[str]]) -> CountedCoverage:
    """The share of ``blocks``' weights an export packed, leaving out what AutoRound never packs on purpose.

    ``model`` is the unquantized model (as the export's AutoRound saw it: its ignore rules, with an adaptation's
    registered, come from ``get_predefined_ignore_layers``); ``packed`` is
    :func:`scaffold.measure.quantize.count_packed`.
    Stock runs and generated tests both report this share, so "stock" and "after the fix" compare.
    """
    from scaffold.measure.quantize import block_coverage, parameter_shapes

    skipped = not_counted(model)
    exclude = [rf"^{re.escape(name)}$" for name in [*ignored_layer_names(model), *skipped]]
    coverage = block_coverage(parameter_shapes(model), packed, blocks, exclude=exclude)
    in_blocks = [name for name in skipped if any(name.startswith(f"{b}.") for group in blocks for b in group)]
    return CountedCoverage(
        share=coverage.share,
        unpacked=list(coverage.unquantized),
        unmapped=list(coverage.unmatched_packed) + list(getattr(packed, "unread", [])),
        not_counted=in_blocks,
    )


def stock_on_tiny(ctx: Any) -> StockRun | None:
    """:func:`run_stock` on ``ctx.tiny()`` (memoized per context), None when there is no tiny instance."""
    import tempfile

    from scaffold.inspection.context import tiny_or_none

    if "stock_run" not in ctx.probe_results:
        tiny = tiny_or_none(ctx)
        if tiny is None:
            return None
        with tempfile.TemporaryDirectory(prefix="scaffold-stock-") as tmp:
            ctx.probe_results["stock_run"] = run_stock(
                tiny, Path(tmp) / "export", amp=False, checkpoint_config=ctx.config
            )
    return ctx.probe_results["stock_run"]
