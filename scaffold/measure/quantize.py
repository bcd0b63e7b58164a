"""Measuring harness: run AutoRound on a small model on CPU and count what the export really packed.

Logs and the layer config ``quantize()`` returns are not proof that a layer was quantized; the
packed ``qweight`` tensors in the exported safetensors are. Every generated test and
``scaffold verify`` use these four functions:

- :func:`run_autoround` quantizes and saves (``format="auto_round"``), optionally capturing the error;
- :func:`count_packed` lists the packed modules of an export and the weight parameters each covers;
- :func:`block_share` is the share of the original model's block weights covered by packed weights
  (:func:`block_coverage` gives the same per owning module, with what stayed unpacked);
- :func:`reload_and_forward` reloads the export with ``from_pretrained`` and checks the logits are finite.

Heavy imports (torch, transformers, auto_round) happen inside the functions.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import re
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaffold.measure.checkpoint_keys import KeyMapper, key_mapper

if TYPE_CHECKING:
    from torch import nn

# AutoRound log lines worth keeping: the per-block and model summaries and skip warnings.
_SUMMARY_PATTERNS = (
    re.compile(r"Summary: quantized"),
    re.compile(r"quantized \d+/\d+ layers in the block"),
    re.compile(r"skipped quantization|not divisible|unquantized", re.IGNORECASE),
)


@dataclass
class QuantRun:
    """The outcome of one :func:`run_autoround` call."""

    ok: bool
    export_dir: str
    seconds: float
    error_type: str | None = None  # exception class name when ``ok`` is False
    error: str | None = None  # its message (first 2000 characters)
    error_traceback: str | None = None
    summary_lines: list[str] = field(default_factory=list)  # AutoRound's summary / skip log lines
    warnings: list[str] = field(default_factory=list)  # every WARNING+ line AutoRound logged
    layer_config: dict[str, Any] = field(default_factory=dict)  # what quantize() returned (not proof)
    # name -> shape of every parameter BEFORE quantization (AutoRound packs the model in place)
    original_params: dict[str, tuple[int, ...]] = field(default_factory=dict)
    amp_dtype: str | None = None  # the dtype AutoRound tuned in ("bfloat16" with amp on, "float32" off)
    amp_dtype: str | None = None  # what AutoRound tuned in: "bfloat16" (amp on) | "float32" (amp off)

    @property
    def error_line(self) -> str:
        return f"{self.error_type}: {self.error}" if self.error_type else ""


@dataclass
class PackedCount:
    """Packed and plain weights in an exported checkpoint."""

    packed: dict[str, int]  # module name -> original weight parameters its qweight covers
    packed_shapes: dict[str, tuple[int, int]]  # module name -> (in_features, out_features)
    plain: dict[str, int]  # ``.weight`` tensors left unpacked (name without ``.weight``) -> parameters
    bits: int
    group_size: int
    unread: list[str] = field(default_factory=list)  # packed tensors of a shape this count cannot read (not 2-D)

    @property
    def packed_params(self) -> int:
        return sum(self.packed.values())

    @property
    def packed_modules(self) -> int:
        return len(self.packed)


@dataclass
class BlockCoverage:
    """How much of the original model's block weights the export packs."""

    total_params: int  # block weight parameters (2-D linear-like and 3-D expert params)
    covered_params: int
    per_owner: dict[str, tuple[int, int]]  # owning module -> (covered, total)
    unmatched_packed: list[str] = field(default_factory=list)  # packed modules not mapped to a block weight

    @property
    def share(self) -> float:
        return self.covered_params / self.total_params if self.total_params else 0.0

    @property
    def unquantized(self) -> list[str]:
        return [name for name, (covered, total) in self.per_owner.items() if covered < total]


@dataclass
class ReloadResult:
    ok: bool
    finite: bool
    error: str | None = None
    quantized_modules: int = 0  # modules of the reloaded model carrying packed weights


class _LineCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _autoround_logger() -> logging.Logger:
    return logging.getLogger("autoround")


def run_autoround(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    out_dir: str | Path,
    *,
    scheme: str = "W4A16",
    iters: int = 2,
    nsamples: int = 2,
    seqlen: int = 32,
    batch_size: int = 2,
    group_size: int | None = None,
    layer_config: dict[str, Any] | None = None,
    raise_errors: bool = True,
    save: bool = True,
    **autoround_kwargs: Any,
) -> QuantRun:
    """Quantize ``model`` with AutoRound on CPU and save it to ``out_dir`` in ``auto_round`` format.

    ``texts`` is the calibration data (a list of strings, no download). With ``raise_errors=False``
    an exception (or AutoRound's ``sys.exit``) is captured into the returned :class:`QuantRun` instead of
    propagating. For tiny models pass a ``group_size`` that divides every ``in_features`` (32 for hidden 64):
    with auto-round 0.16.1 an export whose layers are narrower than the group reloads on CPU through the
    ``auto_round:fake`` backend, which fails (``TypeError`` in ``pad_bits``).
    """
    from auto_round import AutoRound

    from scaffold.measure.precision import apply_bf16_override
    from scaffold.tiny.fit import calibration_dataset

    apply_bf16_override()  # $SCAFFOLD_AUTOROUND_BF16: run as a bf16 (or non-bf16) CPU would
    out_dir = Path(out_dir)
    kwargs: dict[str, Any] = dict(autoround_kwargs)
    if group_size is not None:
        kwargs["group_size"] = group_size
    if layer_config is not None:
        kwargs["layer_config"] = layer_config
    device_map = kwargs.pop("device_map", "cpu")  # the generated tests' --real path passes "cuda"
    collector = _LineCollector()
    logger = _autoround_logger()
    logger.addHandler(collector)
    start = time.perf_counter()
    run = QuantRun(ok=False, export_dir=str(out_dir), seconds=0.0, original_params=parameter_shapes(model))
    # AutoRound calls gc.collect() around every block; in a long-lived process (a test session) each call walks
    # every object alive. Freezing what exists now keeps those calls cheap; unfrozen again below.
    gc.freeze()
    rounder = None
    try:
        rounder = AutoRound(
            model,
            tokenizer,
            scheme=scheme,
            iters=iters,
            nsamples=nsamples,
            seqlen=seqlen,
            batch_size=batch_size,
            dataset=calibration_dataset(model, tokenizer, list(texts), seqlen),
            device_map=device_map,
            **kwargs,
        )
        context = getattr(rounder, "model_context", None)
        if context is not None:
            run.amp_dtype = str(context.amp_dtype).removeprefix("torch.") if context.amp else "float32"
        _, returned_config = rounder.quantize()
        run.layer_config = dict(returned_config or {})
        if save:
            rounder.save_quantized(str(out_dir), format="auto_round")
        run.ok = True
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - AutoRound calls sys.exit() on unsupported block layouts
        run.error_type = type(exc).__name__
        run.error = str(exc)[:2000]
        run.error_traceback = traceback.format_exc()[-6000:]
        if raise_errors:
            raise
    finally:
        gc.unfreeze()
        run.seconds = time.perf_counter() - start
        run.amp_dtype = _amp_dtype(rounder)
        logger.removeHandler(collector)
        for record in collector.records:
            message = record.getMessage()
            if record.levelno >= logging.WARNING:
                run.warnings.append(message)
            if any(pattern.search(message) for pattern in _SUMMARY_PATTERNS):
                run.summary_lines.append(message)
    return run


def _amp_dtype(rounder: Any) -> str | None:
    """The dtype an ``AutoRound(...)`` instance tunes in (None before it decided, or without one)."""
    context = getattr(rounder, "model_context", None)
    dtype = getattr(context, "amp_dtype", None) if context is not None else getattr(rounder, "amp_dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else None


def _quantization_config(export_dir: Path) -> dict[str, Any]:
    for name in ("quantization_config.json", "config.json"):
        path = export_dir / name
        if path.exists():
            data = json.loads(path.read_text())
            data = data.get("quantization_config", data) if name == "config.json" else data
            if data:
                return data
    return {}


def _layer_bits(qconfig: dict[str, Any], module: str) -> int:
    extra = qconfig.get("extra_config") or {}
    if module in extra and extra[module].get("bits"):
        return int(extra[module]["bits"])
    for pattern, cfg in extra.items():
        if cfg.get("bits") and re.fullmatch(pattern, module):
            return int(cfg["bits"])
    return int(qconfig.get("bits", 4))


def _export_tensor_shapes(export_dir: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(export_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


def count_packed(export_dir: str | Path) -> PackedCount:
    """Count the packed (``qweight``) modules of an ``auto_round`` export and the parameters they cover.

    A GPTQ-style ``qweight`` is ``[in_features * bits / 32, out_features]`` int32, so each packed
    module covers ``in_features * out_features`` original weight parameters; a ``qweight`` of another rank
    is listed in ``unread``, not guessed at.
    """
    export_dir = Path(export_dir)
    shapes = _export_tensor_shapes(export_dir)
    if not shapes:
        from scaffold.errors import ScaffoldError

        raise ScaffoldError(f"no safetensors files in {export_dir}", stage="verify")
    qconfig = _quantization_config(export_dir)
    default_bits = int(qconfig.get("bits", 4))
    packed: dict[str, int] = {}
    packed_shapes: dict[str, tuple[int, int]] = {}
    plain: dict[str, int] = {}
    unread: list[str] = []
    for key, shape in shapes.items():
        if key.endswith(".qweight") and len(shape) == 2:
            module = key[: -len(".qweight")]
            bits = _layer_bits(qconfig, module)
            in_features = shape[0] * 32 // bits
            out_features = shape[1]
            packed[module] = in_features * out_features
            packed_shapes[module] = (in_features, out_features)
        elif key.endswith(".qweight"):
            unread.append(key)
        elif key.endswith(".weight") and len(shape) >= 2:
            plain[key[: -len(".weight")]] = math.prod(shape)
        elif len(shape) == 3 and not key.endswith((".qzeros", ".scales", ".g_idx")):
            plain[key] = shape[0] * shape[1] * shape[2]  # fused 3-D expert parameters left as they were
    group_size = int(qconfig.get("group_size", 128))
    return PackedCount(packed, packed_shapes, plain, default_bits, group_size, unread)


class ParamShapes(dict):
    """Name -> shape of every parameter of a model, with the rules mapping its checkpoint keys to those names."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]] = (), checkpoint_keys: KeyMapper | None = None):
        super().__init__(shapes)
        self.checkpoint_keys = checkpoint_keys or KeyMapper()


def parameter_shapes(model: nn.Module) -> ParamShapes:
    """Name -> shape of every parameter; take it before quantizing, since AutoRound packs in place."""
    shapes = {name: tuple(param.shape) for name, param in model.named_parameters()}
    return ParamShapes(shapes, key_mapper(model, shapes))


def block_weights(
    model: nn.Module | Mapping[str, tuple[int, ...]],
    block_names: Sequence[str] | Sequence[Sequence[str]],
    exclude: Sequence[str] = (),
) -> dict[str, int]:
    """Weight parameters per owning module inside the blocks: 2-D ``weight`` params and any 3-D param.

    ``model`` is the original (unquantized) model or its :func:`parameter_shapes`; ``block_names`` are block
    or stack prefixes (``"model.layers"`` covers every layer); owners matching an ``exclude`` regex (e.g.
    ``r"\\.gate$"`` for routers that must stay unquantized) are left out.
    """
    if isinstance(model, Mapping):
        shapes = {name: tuple(getattr(value, "shape", value)) for name, value in model.items()}
    else:
        shapes = parameter_shapes(model)
    prefixes = _flatten(block_names)
    owners: dict[str, int] = {}
    for name, shape in shapes.items():
        if not any(name.startswith(p + ".") for p in prefixes):
            continue
        owner, _, leaf = name.rpartition(".")
        if any(re.search(pattern, owner) for pattern in exclude):
            continue
        if (len(shape) == 2 and leaf == "weight") or len(shape) == 3:
            owners[owner] = owners.get(owner, 0) + math.prod(shape)
    return owners


def _flatten(block_names: Sequence[str] | Sequence[Sequence[str]]) -> list[str]:
    flat: list[str] = []
    for item in block_names:
        flat.extend([item] if isinstance(item, str) else list(item))
    return flat


def block_coverage(
    model: nn.Module | Mapping[str, tuple[int, ...]],
    packed: PackedCount,
    block_names: Sequence[str] | Sequence[Sequence[str]],
    exclude: Sequence[str] = (),
) -> BlockCoverage:
    """Match packed modules to the original model's block weights.

    A packed module counts for the deepest owning module that equals it or contains it, so experts
    unfused into ``experts.3.gate_proj`` still count for the original fused ``experts`` parameters.
    Export names go through the model's load-direction key rules first (:mod:`scaffold.measure.checkpoint_keys`;
    ``model`` given as :func:`parameter_shapes` carries them, a plain mapping has none). Packed modules inside
    the blocks that match no counted weight, or whose name the model does not have at all (checkpoint names no
    rule maps back), are listed in ``unmatched_packed``: reported, never dropped.
    """
    shapes = model if isinstance(model, Mapping) else parameter_shapes(model)
    owners = block_weights(shapes, block_names, exclude)
    keys = shapes.checkpoint_keys if isinstance(shapes, ParamShapes) else KeyMapper()
    known_modules = {name.rpartition(".")[0] for name in shapes}
    covered = dict.fromkeys(owners, 0)
    unmatched: list[str] = []
    by_depth = sorted(owners, key=lambda owner: owner.count("."), reverse=True)
    prefixes = _flatten(block_names)
    for export_name, params in packed.packed.items():
        name = keys.module_name(export_name)
        owner = next((o for o in by_depth if name == o or name.startswith(o + ".")), None)
        if owner is None:
            if any(name.startswith(p + ".") for p in prefixes) or name not in known_modules:
                unmatched.append(export_name)
            continue
        covered[owner] += params
    per_owner = {owner: (min(covered[owner], total), total) for owner, total in owners.items()}
    return BlockCoverage(
        total_params=sum(owners.values()),
        covered_params=sum(c for c, _ in per_owner.values()),
        per_owner=per_owner,
        unmatched_packed=unmatched,
    )


def block_share(
    model: nn.Module | Mapping[str, tuple[int, ...]],
    packed: PackedCount,
    block_names: Sequence[str] | Sequence[Sequence[str]],
    exclude: Sequence[str] = (),
) -> float:
    """Share (0..1) of the original model's block weight parameters covered by packed weights."""
    return block_coverage(model, packed, block_names, exclude).share


def _own_class(export_dir: str | Path) -> Any:
    """The transformers class named by the export's ``config.json`` ``architectures`` (None if not one of them)."""
    import transformers

    config = json.loads((Path(export_dir) / "config.json").read_text(encoding="utf-8"))
    names = config.get("architectures") or []
    return getattr(transformers, names[0], None) if names else None


def reload_and_forward(
    export_dir: str | Path,
    trust_remote_code: bool = False,
    input_ids: Any = None,
    vocab_limit: int = 256,
    auto_class: str = "AutoModelForCausalLM",
) -> ReloadResult:
    """Reload an ``auto_round`` export on CPU with ``from_pretrained`` (of ``auto_class``, the one the model was
    built with) and check its logits are finite."""
    import torch
    import transformers

    try:
        from auto_round.utils.common import SUPPORTED_LAYER_TYPES  # noqa: F401 - registers the HF quantizer

        kwargs = {"trust_remote_code": trust_remote_code, "device_map": "cpu", "torch_dtype": torch.float32}
        try:
            model = getattr(transformers, auto_class).from_pretrained(str(export_dir), **kwargs).eval()
        except ValueError as exc:
            own = _own_class(export_dir)  # a text sub-config no auto class maps (emu3's): the class it was saved as
            if "Unrecognized configuration class" not in str(exc) or own is None:
                raise
            model = own.from_pretrained(str(export_dir), **kwargs).eval()
        if input_ids is None:
            vocab = int(getattr(model.config, "vocab_size", vocab_limit) or vocab_limit)
            generator = torch.Generator().manual_seed(0)
            input_ids = torch.randint(0, min(vocab, vocab_limit), (1, 16), generator=generator)
        with torch.no_grad():
            logits = model(input_ids=input_ids, use_cache=False).logits
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return ReloadResult(ok=False, finite=False, error=f"{type(exc).__name__}: {str(exc)[:1000]}")
    quantized = sum(1 for module in model.modules() if hasattr(module, "qweight"))
    return ReloadResult(ok=True, finite=bool(torch.isfinite(logits).all()), quantized_modules=quantized)
