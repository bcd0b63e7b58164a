"""What every generated ``test_<slug>.py`` runs: apply the adaptation, check it, quantize, write a verdict.

Generated tests stay short and readable by calling these helpers; the facts they check (replaced
classes, registries, the predicted packed layers) are recorded in the test itself at generation
time. Set ``SCAFFOLD_ADAPTATION=checkout`` to test a patched AutoRound checkout on ``PYTHONPATH``
instead of importing the runtime plugin; ``SCAFFOLD_VERDICT`` names a JSON file the verdict goes to.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scaffold.markers import EQUIVALENCE_TOLERANCE, TODO_MARK

ADAPTATION_ENV = "SCAFFOLD_ADAPTATION"
VERDICT_ENV = "SCAFFOLD_VERDICT"
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
    from scaffold.resolve.target import resolve_target
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
    """What the adapted AutoRound still gets wrong about ``model``'s registries (empty: all good).

    The checks of every mode whose ``CHECK`` runs in the registries test (``scaffold/modes/<mode>/check.py``).
    """
    from types import SimpleNamespace

    from scaffold.modes import FAILURE_MODES

    tiny = SimpleNamespace(model=model, inputs={})
    return [
        problem
        for spec in FAILURE_MODES
        if spec.check.test == "test_autoround_registries_know_the_model" and spec.check.problems is not None
        for problem in spec.check.problems(tiny, test_data)
    ]


def _replacing_modes() -> tuple[str, ...]:
    """The modes (``TEST_DATA`` keys) whose replaced modules the equivalence test compares."""
    from scaffold.modes import REGISTRY

    return tuple(REGISTRY.checked_by("test_replacements_match_the_original_modules"))


def check_equivalence(tiny: Any, test_data: dict[str, Any], tolerance: float = EQUIVALENCE_TOLERANCE) -> Any:
    """Each replaced or converted module computes what the original did (``scaffold/modes/equivalence.py``)."""
    from scaffold.modes.equivalence import check_equivalence as check

    return check(tiny, test_data, tolerance, keys=_replacing_modes())


def compared_paths(test_data: dict[str, Any]) -> list[str]:
    """Every module path the equivalence check must compare."""
    from scaffold.modes.equivalence import entries_of, module_paths

    return [path for entry in entries_of(test_data, _replacing_modes()) for path in module_paths(entry)]


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
    """Blocks AutoRound's replay does not reproduce (``scaffold/modes/block_replay/check.py``)."""
    from scaffold.modes.block_replay.check import replay_problems as problems

    return problems(tiny)


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
    from scaffold.measure.quantize import block_coverage, count_packed, reload_and_forward, run_autoround
    from scaffold.measure.stock import counted_coverage
    from scaffold.plan.predict import stack_block_names
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

    from scaffold.plan.predict import expected_packing
    from scaffold.resolve.target import resolve_target

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
