"""What every generated ``test_<slug>.py`` runs: apply the adaptation, check it, quantize, write a verdict.

Generated tests stay short and readable by calling these helpers; the facts they check (replaced
classes, registries, the predicted packed layers) are recorded in the test itself at generation
time. Set ``SCAFFOLD_ADAPTATION=checkout`` to test a patched AutoRound checkout on ``PYTHONPATH``
instead of importing the runtime plugin; ``SCAFFOLD_VERDICT`` names a JSON file the verdict goes to.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

ADAPTATION_ENV = "SCAFFOLD_ADAPTATION"
VERDICT_ENV = "SCAFFOLD_VERDICT"
TODO_MARK = "TODO(scaffold)"
COMPILE_ENV = "SCAFFOLD_TORCH_COMPILE"


def apply_adaptation(folder: Path, plugin: str | None) -> str:
    """Import the runtime plugin from ``folder`` (default) or rely on a patched checkout; returns the mode."""
    mode = os.environ.get(ADAPTATION_ENV, "plugin")
    if mode == "checkout":
        import auto_round

        record_verdict(adaptation="checkout", auto_round_path=str(Path(auto_round.__file__).parent))
        return mode
    if plugin:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        importlib.import_module(plugin)
    record_verdict(adaptation="plugin")
    return "plugin"


def target_spec(folder: Path, target: str, relative_path: str) -> str:
    """The target to build: the recorded folder relative to the generated one if any, else the spec."""
    return str((folder / relative_path).resolve()) if relative_path else target


def build_tiny_target(spec: str, trust_remote_code: bool, seed: int = 0) -> Any:
    """The same tiny random instance ``scaffold new-arch`` predicted on (2 blocks per stack)."""
    from scaffold.resolve import resolve_target
    from scaffold.tiny import build_tiny

    torch.manual_seed(seed)
    target = resolve_target(spec, trust_remote_code=trust_remote_code)
    return build_tiny(target.config, trust_remote_code=target.trust_remote_code, seed=seed)


def unfinished_todos(folder: Path) -> list[str]:
    """``file:line`` of every ``TODO(scaffold)`` left in the generated Python files (skeletons to finish)."""
    found = []
    this_test = {path.name for path in folder.glob("test_*.py")}
    for path in sorted(folder.rglob("*.py")):
        if path.name in this_test or path.name == "conftest.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if TODO_MARK in line:
                found.append(f"{path.relative_to(folder)}:{number}: {line.strip()}")
    return found


def registry_problems(model: nn.Module, test_data: dict[str, Any]) -> list[str]:
    """What the adapted AutoRound still gets wrong about ``model`` per the generated facts (empty: all good)."""
    from auto_round import special_model_handler as handler
    from auto_round.utils import model as utils_model

    problems = []
    stacks = test_data.get("block_stacks")
    if stacks:
        found = [sorted({name.rsplit(".", 1)[0] for name in names}) for names in utils_model.get_block_names(model)]
        if [s for group in found for s in group] != stacks:
            problems.append(f"get_block_names returns stacks {found}, expected {stacks}")
    for model_class, keys in test_data.get("shared_cache_keys", {}).items():
        registered = tuple(handler.SPECIAL_SHARED_CACHE_KEYS.get(model_class, ()))
        if not set(keys) <= set(registered):
            problems.append(f"SPECIAL_SHARED_CACHE_KEYS[{model_class!r}] = {registered}, expected {keys}")
    ignore = test_data.get("ignore_layers")
    if ignore:
        ignored = set(handler.get_predefined_ignore_layers(model))
        suffixes = tuple(ignore["router_suffixes"])
        expected = set(ignore["patterns"])
        expected |= {name for name, _ in model.named_modules() if suffixes and name.endswith(suffixes)}
        if not expected <= ignored:
            problems.append(f"predefined ignore layers miss {sorted(expected - ignored)}")
    if test_data.get("llm_only") and utils_model.is_mllm_model(model):
        problems.append("AutoRound still treats the model as multimodal (is_mllm_model is True)")
    return problems


def adapt_like_autoround(model: nn.Module) -> nn.Module:
    """The structural changes AutoRound makes before calibration: replacements, then special handling."""
    from auto_round import special_model_handler as handler
    from auto_round.modeling.fused_moe.replace_modules import materialize_model_

    model = handler.update_module(model, cleanup_original=False)
    materialize_model_(model)
    return handler._handle_special_model(model)


@dataclass
class Equivalence:
    checked: list[str] = field(default_factory=list)  # module paths compared
    max_abs_err: float = 0.0
    problems: list[str] = field(default_factory=list)


def _tensors(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, list | tuple):
        return [t for item in output for t in _tensors(item)]
    return []


def _capture_calls(model: nn.Module, paths: list[str], inputs: dict[str, torch.Tensor]) -> dict[str, tuple]:
    """The (args, kwargs) each module at ``paths`` is first called with during a forward of ``model``."""
    calls: dict[str, tuple] = {}
    handles = []
    for path in paths:

        def hook(module, args, kwargs, path=path):
            calls.setdefault(path, (copy.deepcopy(args), copy.deepcopy(kwargs)))

        handles.append(model.get_submodule(path).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _route_every_expert(module: nn.Module, args: tuple, kwargs: dict, entry: dict[str, Any]) -> tuple[tuple, dict]:
    """Replace the expert indices of a captured call by a round-robin assignment so every expert is used."""
    index_arg, experts = entry.get("index_arg"), entry.get("num_experts")
    if not index_arg or not experts:
        return args, kwargs
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    index = bound.arguments.get(index_arg)
    if not isinstance(index, torch.Tensor):
        return args, kwargs
    bound.arguments[index_arg] = (torch.arange(index.numel()) % experts).reshape(index.shape).to(index.dtype)
    return bound.args, bound.kwargs


def module_paths(entry: dict[str, Any]) -> list[str]:
    """Paths of the modules one ``replacements``/``conversions`` entry covers (``module_paths``, or ``modules``)."""
    return list(entry.get("module_paths") or entry.get("modules") or [])


def compared_paths(test_data: dict[str, Any]) -> list[str]:
    """Every module path the equivalence check must compare."""
    entries = [*test_data.get("replacements", []), *test_data.get("conversions", [])]
    return [path for entry in entries for path in module_paths(entry)]


def check_equivalence(tiny: Any, test_data: dict[str, Any], tolerance: float = 1e-5) -> Equivalence:
    """Each replaced or converted module computes what the original did (float32, same captured inputs)."""
    entries = [*test_data.get("replacements", []), *test_data.get("conversions", [])]
    result = Equivalence()
    if not entries:
        return result
    reference = copy.deepcopy(tiny.model).float().eval()
    adapted = adapt_like_autoround(copy.deepcopy(tiny.model).float().eval())
    calls = _capture_calls(reference, compared_paths(test_data), tiny.inputs)
    for entry in entries:
        for path in module_paths(entry):
            original, new = reference.get_submodule(path), adapted.get_submodule(path)
            if type(new) is type(original):
                result.problems.append(f"{path}: still {type(original).__name__}, the adaptation did not replace it")
                continue
            if path not in calls:
                result.problems.append(f"{path}: not called by the model's forward")
                continue
            args, kwargs = _route_every_expert(original, *calls[path], entry)
            with torch.no_grad():
                expected, got = _tensors(original(*args, **kwargs)), _tensors(new(*args, **kwargs))
            if not expected or len(expected) != len(got):
                result.problems.append(f"{path}: outputs differ in structure ({len(expected)} vs {len(got)} tensors)")
                continue
            err = max(float((a.float() - b.float()).abs().max()) for a, b in zip(expected, got, strict=True))
            result.max_abs_err = max(result.max_abs_err, err)
            result.checked.append(path)
            if err > tolerance:
                result.problems.append(f"{path}: max abs error {err:.3g} > {tolerance}")
            if all(float(t.abs().max()) == 0.0 for t in got):
                result.problems.append(f"{path}: the replacement's output is all zero")
    record_verdict(max_equivalence_error=result.max_abs_err, modules_compared=len(result.checked))
    return result


@dataclass
class QuantCheck:
    packed_layers: int
    packed_params: int
    block_share: float
    reload_ok: bool
    finite: bool
    error: str | None = None
    expected_layers: int = 0
    expected_params: int = 0


def replay_problems(tiny: Any) -> list[str]:
    """Blocks whose replay by AutoRound's own caching and ``block_forward`` does not reproduce the real forward.

    Run after :func:`apply_adaptation`: ``AutoRound(...)`` then applies the adaptation to its copy of the model,
    so an empty list means every block of each stack gets, replayed, the inputs the model gives it.
    """
    from scaffold.autoround_replay import replay_outcomes

    outcomes = replay_outcomes(tiny.model, tiny.inputs)
    if not outcomes:
        return ["AutoRound's get_block_names finds no blocks to replay"]
    return [f"{block}: {outcome}" for block, outcome in outcomes.items() if not outcome.startswith("matches")]


def tokenizer_for(tiny: Any) -> Any:
    from scaffold.tiny.inputs import text_vocab_size
    from scaffold.tiny.tokenizer import make_tokenizer

    names = tuple(name for name in ("input_ids", "attention_mask") if name in tiny.inputs) or ("input_ids",)
    suffix = tuple(getattr(tiny, "suffix_ids", ()))  # special ids the forward looks up: appended to every text
    return make_tokenizer(text_vocab_size(tiny.config), model_input_names=names, suffix_ids=suffix)


def _quantize_and_count(
    model: nn.Module,
    tokenizer: Any,
    out_dir: Path,
    expected: dict[str, Any],
    trust_remote_code: bool,
    auto_class: str = "AutoModelForCausalLM",
    **kwargs: Any,
) -> QuantCheck:
    from scaffold.predict import stack_block_names
    from scaffold.quantize import block_coverage, count_packed, reload_and_forward, run_autoround
    from scaffold.stock import counted_coverage
    from scaffold.tiny.tokenizer import calibration_texts

    torch.manual_seed(0)
    original = copy.deepcopy(model)
    texts = calibration_texts()
    run = run_autoround(model, tokenizer, texts, out_dir, group_size=expected["group_size"], **kwargs)
    packed = count_packed(run.export_dir)
    blocks = stack_block_names(original, expected["stacks"], expected.get("exclude_classes", ()))
    coverage = block_coverage(original, packed, blocks)
    counted = counted_coverage(original, packed, blocks)  # comparable with the stock run's share
    probe = tokenizer(texts[0], truncation=True, max_length=16, return_tensors="pt")["input_ids"]  # as calibrated
    reload = reload_and_forward(run.export_dir, trust_remote_code, input_ids=probe, auto_class=auto_class)
    check = QuantCheck(
        packed_layers=len(packed.packed),
        packed_params=sum(packed.packed.values()),
        block_share=coverage.share,
        reload_ok=reload.ok,
        finite=reload.finite,
        error=reload.error,
        expected_layers=expected["layers"],
        expected_params=expected["params"],
    )
    record_verdict(
        layers_quantized=check.packed_layers,
        layers_expected=check.expected_layers,
        block_share=round(check.block_share, 6),
        block_share_expected=expected["block_share"],
        counted_share=round(counted.share, 6),
        unmapped_packed=counted.unmapped,
        export="ok",
        amp_dtype=run.amp_dtype,
        reload="ok" if reload.ok and reload.finite else (reload.error or "non-finite logits"),
    )
    return check


def quantize_and_reload(tiny: Any, out_dir: Path, *, predicted: dict[str, Any], trust_remote_code: bool) -> QuantCheck:
    """AutoRound W4A16 (iters=2, nsamples=2) on the tiny instance; count what the export packed; reload it.

    ``torch.compile`` stays off unless ``$SCAFFOLD_TORCH_COMPILE=1``: AutoRound turns it on for MoE models, and
    compiling on a CPU takes minutes without telling anything about the architecture (``--real`` keeps it on).
    """
    model = copy.deepcopy(tiny.model)
    compile_on = os.environ.get(COMPILE_ENV) == "1"
    return _quantize_and_count(
        model,
        tokenizer_for(tiny),
        out_dir,
        predicted,
        trust_remote_code,
        auto_class=getattr(tiny, "auto_class", "AutoModelForCausalLM"),
        enable_torch_compile=compile_on,
    )


def quantize_real(
    spec: str,
    out_dir: Path,
    *,
    predicted: dict[str, Any],
    test_data: dict[str, Any],
    group_size: int,
    trust_remote_code: bool,
    device: str = "cuda",
) -> QuantCheck:
    """The same checks on the real checkpoint (a local folder with weights): expected counts from its own shapes."""
    import pytest
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scaffold.predict import expected_packing
    from scaffold.resolve import resolve_target

    target = resolve_target(spec, trust_remote_code=trust_remote_code)
    if target.model_dir is None or not any(Path(target.model_dir).glob("*.safetensors")):
        pytest.skip(f"{spec} has no checkpoint weights on this machine")
    folder = str(target.model_dir)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=trust_remote_code, dtype=dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    expected = expected_packing(
        model, predicted["stacks"], group_size, test_data, predicted.get("roles", {}), predicted.get("layouts")
    )
    record_verdict(real_checkpoint=folder, real_device=device)  # scaffold verify --real checks that this ran
    return _quantize_and_count(model, tokenizer, out_dir, expected, trust_remote_code, device_map=device)


def record_verdict(**values: Any) -> None:
    """Merge ``values`` into the JSON verdict file named by ``SCAFFOLD_VERDICT`` (no-op when unset)."""
    target = os.environ.get(VERDICT_ENV)
    if not target:
        return
    path = Path(target)
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data.update(values)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
