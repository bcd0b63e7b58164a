"""``build_tiny``: try shrink strategies from the most to the least aggressive, keep the first that forwards."""

from __future__ import annotations

import contextlib
import copy
import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from scaffold.build.meta import instantiate, meta_only_failure, pick_auto_class
from scaffold.errors import ScaffoldError, first_line
from scaffold.inspection.hooks import first_tensor
from scaffold.resolve.diagnose import cause_of
from scaffold.tiny.fit import fit_inputs
from scaffold.tiny.init import repair_uninitialised
from scaffold.tiny.inputs import forward_parameters, make_inputs
from scaffold.tiny.model import TinyModel
from scaffold.tiny.shrink import ShrinkTargets, shrink_config_dict

# A strategy whose model would be larger than this is not "tiny": it is skipped, not built.
MAX_PARAMETERS = 150_000_000
# How far an attempt got, for reporting the most informative failure.
STAGES = ("config", "size", "build", "forward")


class ShrinkError(ScaffoldError):
    """No strategy produced a tiny model that builds and forwards; ``attempts`` says why for each."""

    def __init__(self, message: str, attempts: list[Attempt] | None = None):
        super().__init__(message, "shrink")
        self.attempts = attempts or []


@dataclass
class Attempt:
    strategy: str
    stage: str  # the stage that failed: config, size, build or forward
    error: str


class _AttemptFailed(Exception):
    def __init__(self, stage: str, exc: BaseException | str):
        text = exc if isinstance(exc, str) else cause_of(exc, stage)  # actionable for known load failures
        super().__init__(text)
        self.stage = stage
        self.text = text


def strategies(layers: int) -> list[ShrinkTargets]:
    """Careful (every width tiny) → deeper (for layouts that need more blocks, e.g. shared-KV or tied
    blocks) → gentle (per-head dims kept) → depth only (widths kept)."""
    return [
        ShrinkTargets("careful", layers=layers),
        ShrinkTargets("careful_deeper", layers=max(2 * layers, 4)),
        ShrinkTargets("gentle", layers=layers, hidden=None, head_dim=None),
        ShrinkTargets("depth_only", layers=layers, hidden=None, heads=None, head_dim=None),
    ]


def build_tiny(config: Any, *, trust_remote_code: bool = False, layers: int = 2, seed: int = 0) -> TinyModel:
    """A tiny random float32 CPU instance of ``config``'s architecture that forwards, or :class:`ShrinkError`."""
    if layers < 1:
        raise ScaffoldError(f"layers must be at least 1, got {layers}", "shrink")
    try:
        tree = config.to_dict()
    except Exception as exc:  # noqa: BLE001
        raise ShrinkError(f"cannot read {type(config).__name__} as a dict: {cause_of(exc, 'config')}") from exc
    attempts: list[Attempt] = []
    for targets in strategies(layers):
        try:
            with torch.random.fork_rng(devices=[]):  # seeding for the init must not disturb the caller's RNG
                return _attempt(config, tree, targets, trust_remote_code=trust_remote_code, seed=seed)
        except _AttemptFailed as failed:
            attempts.append(Attempt(targets.name, failed.stage, failed.text))
    best = max(attempts, key=lambda a: STAGES.index(a.stage))
    raise ShrinkError(
        f"no shrink strategy gives a working tiny {getattr(config, 'model_type', '') or type(config).__name__}; "
        f"best was {best.strategy}, which failed at {best.stage}: {best.error}",
        attempts,
    )


def _attempt(config: Any, tree: dict, targets: ShrinkTargets, *, trust_remote_code: bool, seed: int) -> TinyModel:
    shrunk, changes = shrink_config_dict(tree, targets)
    try:
        small = rebuild_config(config, shrunk, changes)
        auto_class = pick_auto_class(small)
    except Exception as exc:  # noqa: BLE001 - a config validator rejected the shrunk sizes
        raise _AttemptFailed("config", exc) from exc
    invalid = config_invalidity(small)
    if invalid:  # the config object may have been patched attribute by attribute: it would not save or reload
        raise _AttemptFailed("config", f"the shrunk config does not validate: {invalid}")
    _make_decoder(small, auto_class, changes)
    if targets.hidden is None:
        _check_size(small, auto_class, trust_remote_code)
    try:
        torch.manual_seed(seed)
        with torch.device("cpu"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = instantiate(small, trust_remote_code=trust_remote_code, auto_class=auto_class)
        model = model.float().eval()
        repair_uninitialised(model, seed)
        inputs = make_inputs(model, model.config, seed)
    except Exception as exc:  # noqa: BLE001 - the model's own code failed on the shrunk config
        raise _AttemptFailed("build", exc) from exc
    try:
        inputs, suffix = fit_inputs(lambda batch: check_forward(model, batch), inputs, model.config)
    except Exception as exc:  # noqa: BLE001
        raise _AttemptFailed("forward", exc) from exc
    return TinyModel(
        model=model,
        config=model.config,
        auto_class=auto_class,
        inputs=inputs,
        strategy=targets.name,
        changes=changes,
        suffix_ids=suffix,
    )


def rebuild_config(config: Any, tree: dict, changes: dict[str, list]) -> Any:
    """The config class rebuilt from the shrunk dict; setting attributes one by one is the fallback."""
    try:
        return type(config).from_dict(copy.deepcopy(tree))
    except Exception as first:  # noqa: BLE001
        try:
            return _set_attributes(copy.deepcopy(config), changes)
        except Exception:  # noqa: BLE001
            raise first from None


def config_invalidity(config: Any) -> str | None:
    """Why ``config`` or one of its sub-configs fails its own ``validate()`` (transformers 5's strict
    dataclasses, run again by ``save_pretrained`` and on reload), in one line; ``None`` when valid."""
    pending, seen = [("", config)], set()
    while pending:
        where, current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        validate = getattr(type(current), "validate", None)
        if callable(validate):
            try:
                validate(current)
            except Exception as exc:  # noqa: BLE001 - any validator failure makes the config unusable
                return f"{where}{_validator_message(exc)}"
        for name, value in vars(current).items():
            if hasattr(value, "to_dict") and callable(getattr(type(value), "validate", None)):
                pending.append((f"{where}{name}: ", value))
    return None


def _validator_message(exc: BaseException) -> str:
    """``validate_architecture: ValueError: ...`` for huggingface_hub's StrictDataclassClassValidationError."""
    validator = re.search(r"validator '(\w+)'", str(exc))
    cause = exc.__cause__
    if validator and cause is not None:
        return f"{validator.group(1)}: {first_line(cause, limit=300)}"
    return first_line(exc, limit=300)


def _set_attributes(config: Any, changes: dict[str, list]) -> Any:
    for path, (_, new) in changes.items():
        *parents, name = path.split(".")
        owner = config
        for parent in parents:
            owner = owner[parent] if isinstance(owner, dict) else getattr(owner, parent)
        if isinstance(owner, dict):
            owner[name] = new
        else:
            with contextlib.suppress(AttributeError):  # read-only properties follow the attributes they derive from
                setattr(owner, name, new)
    return config


def _make_decoder(config: Any, auto_class: str, changes: dict[str, list]) -> None:
    """Causal-LM heads of encoder architectures (BERT-like) need ``is_decoder=True``, as their own tests set."""
    if auto_class != "AutoModelForCausalLM" or getattr(config, "is_encoder_decoder", False):
        return
    if getattr(config, "is_decoder", None) is False:
        with contextlib.suppress(AttributeError):
            config.is_decoder = True
            changes["is_decoder"] = [False, True]


def _check_size(config: Any, auto_class: str, trust_remote_code: bool) -> None:
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            skeleton = instantiate(config, trust_remote_code=trust_remote_code, auto_class=auto_class)
    except Exception as exc:  # noqa: BLE001
        if meta_only_failure(exc):
            return  # code that cannot run on the meta device: the real build of the shrunk config follows
        raise _AttemptFailed("build", exc) from exc
    count = sum(p.numel() for p in skeleton.parameters())
    if count > MAX_PARAMETERS:
        raise _AttemptFailed("size", f"{count:,} parameters is over the tiny limit of {MAX_PARAMETERS:,}")


def check_forward(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> Any:
    """Run one forward without KV cache; raise if it fails or its logits are not finite."""
    extra = {"use_cache": False} if "use_cache" in forward_parameters(model) else {}
    with torch.no_grad():
        output = model(**inputs, **extra)
    logits = getattr(output, "logits", None)
    if not isinstance(logits, torch.Tensor):
        logits = first_tensor(output, floating=True)
    if logits is None:
        raise RuntimeError(f"forward returned no tensor ({type(output).__name__})")
    if not torch.isfinite(logits).all():
        raise RuntimeError("forward gave non-finite logits")
    return output
