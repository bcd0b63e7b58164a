"""`scaffold new-arch` on the transformers-4.4x corpus (tests/archs_tf4), and the block-replay fixes it needs.

The unit tests run anywhere: per-block inputs (a layer index) are rebuilt per block, inputs taken from the
previous block's output (cross-layer KV sharing) are carried over, anything else stays a skeleton. The
end-to-end tests (``tf4``, ``slow``) generate each adaptation under transformers 4.57 and run its generated
test; run them with ``.ci/tf4.sh tests/test_tf4_new_arch.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.modes.block_replay.detect import _follows, carried_outputs
from scaffold.modes.block_replay.generate import block_offset, choose_fix, generate, render_fix
from scaffold.plan.model import Plan
from scaffold.versions import transformers_major

ARCHS_TF4 = Path(__file__).parent / "archs_tf4"
ARCH_NAMES = sorted(p.name for p in ARCHS_TF4.iterdir() if (p / "config.json").is_file())
needs_tf4 = pytest.mark.skipif(transformers_major() != 4, reason="written for transformers 4.x (run .ci/tf4.sh)")


def replay_finding(cause: str, inputs: dict, **evidence) -> Finding:
    return Finding(
        mode=Mode.BLOCK_REPLAY,
        severity=Severity.FAILS,
        summary=f"replay fails; cause: {cause}",
        fix="",
        modules=["model.layers.0"],
        evidence={"stack": "model.layers", "cause": cause, "inputs": inputs, **evidence},
    )


def test_block_offset_recognises_a_layer_index_only():
    assert block_offset([0, 1, 2]) == 0
    assert block_offset([3, 4]) == 3
    assert block_offset([0, 0, 0]) is None
    assert block_offset([0, 2, 4]) is None
    assert block_offset([True, False]) is None


def test_a_zero_dim_input_that_differs_per_block_is_rebuilt_per_block():
    finding = replay_finding(
        "zero_dim_tensor",
        {"layer_idx": "Tensor[] torch.int64", "scale": "Tensor[] torch.float32"},
        cause_inputs=["layer_idx", "scale"],
        per_block_values={"layer_idx": [0, 1, 2], "scale": [0.5, 0.5, 0.5]},
    )
    fix = choose_fix(finding)
    assert (fix.rewrite, fix.constant_keys, fix.index_keys) == ("constant", ("scale",), {"layer_idx": 0})
    plan = Plan(model_type="toy", model_class="ToyForCausalLM")
    generate(finding, plan)
    assert plan.test_data["block_replay"][0]["per_block"] == {"layer_idx": 0}
    assert not plan.items[0].todos


def test_a_per_block_value_without_a_rule_stays_a_skeleton():
    finding = replay_finding(
        "zero_dim_tensor", {"t": "Tensor[]"}, cause_inputs=["t"], per_block_values={"t": [0.1, 0.7, 0.2]}
    )
    fix = choose_fix(finding)
    assert fix.rewrite == "skeleton" and "t differs per block" in fix.reason


def test_same_value_for_every_block_keeps_the_constant_rewrite():
    finding = replay_finding("zero_dim_tensor", {"t": "Tensor[]"}, cause_inputs=["t"], per_block_values={"t": [7, 7]})
    assert choose_fix(finding).index_keys == {} and choose_fix(finding).constant_keys == ("t",)


def stacked(blocks: list[torch.nn.Module]) -> torch.nn.Module:
    """A model holding ``blocks`` at ``model.layers``, the stack the findings name."""
    model = torch.nn.Module()
    model.model = torch.nn.Module()
    model.model.layers = torch.nn.ModuleList(blocks)
    return model


def _run_rendered(source: str, namespace_name: str) -> dict:
    namespace: dict = {}
    exec(compile(source, namespace_name, "exec"), namespace)  # noqa: S102 - the generated fix under test
    return namespace


class IndexedBlock(torch.nn.Module):
    """A block scaling its input by (layer_idx + 1): wrong indices change the output."""

    def forward(self, hidden_states, layer_idx=None):
        return (hidden_states * (layer_idx.float() + 1.0),)


def test_rendered_index_rewrite_gives_each_block_its_own_index():
    torch.manual_seed(0)
    fix = choose_fix(
        replay_finding("zero_dim_tensor", {"layer_idx": "Tensor[]"}, per_block_values={"layer_idx": [0, 1, 2]})
    )
    code = _run_rendered(render_fix(fix, "toy", "RuntimeError: split"), "index_fix")
    model = stacked([IndexedBlock() for _ in range(3)])
    code["_patch_toy_block_replay"](model)
    layers = model.model.layers
    hidden = torch.randn(2, 3, 4)
    layers[0](hidden, layer_idx=torch.tensor(0))  # the calibration forward: the index is kept out of kwargs
    for index, block in enumerate(layers):  # the replay: no layer_idx, as AutoRound caches none
        torch.testing.assert_close(block(hidden)[0], hidden * (index + 1))


class KvBlock(torch.nn.Module):
    """Returns (hidden, kv); a block given ``shared`` adds it instead of computing its own."""

    def forward(self, hidden_states, shared=None):
        kv = hidden_states.sum(dim=-1, keepdim=True) if shared is None else shared
        return (hidden_states + kv, kv)


def test_rendered_carry_rewrite_hands_each_sample_the_previous_blocks_output():
    torch.manual_seed(0)
    fix = choose_fix(
        replay_finding("previous_block_output", {"shared": "Tensor[1, 3, 1]"}, carried_from_previous={"shared": 1})
    )
    assert fix.rewrite == "carry"
    code = _run_rendered(render_fix(fix, "toy", "TypeError: unpack"), "carry_fix")
    model = stacked([KvBlock(), KvBlock()])
    code["_patch_toy_block_replay"](model)
    layers = model.model.layers
    samples = torch.randn(4, 3, 5)
    with torch.no_grad():
        first = layers[0](samples)  # replayed alone, in one batch
        expected = layers[1](first[0], shared=first[1])[0]
        order = torch.tensor([2, 0, 3, 1])  # the next block replays the samples in another order and batching
        got = torch.cat([layers[1](first[0][order[i : i + 2]])[0] for i in (0, 2)])
    torch.testing.assert_close(got, expected[order])


def test_carried_outputs_and_block_order():
    kv = (torch.ones(1, 2), torch.zeros(1, 2))
    assert carried_outputs(["shared"], {"shared": kv}, (torch.randn(1, 2), None, kv)) == {"shared": 2}
    assert carried_outputs(["shared"], {"shared": kv}, (torch.randn(1, 2),)) == {}
    assert _follows("model.layers.3", "model.layers.2") and not _follows("model.layers.3", "model.layers.1")


# --- end to end, under transformers 4.57 ------------------------------------------------------------------------

REPLAY_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
__import__(sys.argv[2])
from scaffold.inspection.autoround_replay import replay_outcomes
from scaffold.testkit import build_tiny_target
tiny = build_tiny_target(sys.argv[3], True)
print(json.dumps(replay_outcomes(tiny.model, tiny.inputs)))
"""

SHIPPED_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
__import__(sys.argv[2])
import torch
from transformers import AutoConfig, AutoModelForCausalLM
from scaffold.measure.quantize import count_packed, run_autoround
from scaffold.tiny.tokenizer import calibration_texts, make_tokenizer
config = AutoConfig.from_pretrained(sys.argv[3], trust_remote_code=True)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config, trust_remote_code=True).eval()
specials = {"unk_token": 0, "pad_token": 1, "bos_token": 2, "eos_token": 3}
tokenizer = make_tokenizer(512, ("input_ids", "attention_mask"), special_ids=specials)
run = run_autoround(model, tokenizer, calibration_texts(4), sys.argv[4], raise_errors=False)
packed = count_packed(sys.argv[4]).packed_modules if run.ok else 0
print(json.dumps({"ok": run.ok, "error": run.error_line, "warnings": run.warnings, "packed": packed}))
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory, autoround_bf16):
    """{name: generated folder}, each generated once by ``new_arch`` on demand, per bf16 mode (off, then on)."""
    from scaffold.plan.generate import new_arch
    from scaffold.resolve.target import resolve_target

    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            out = tmp_path_factory.mktemp(name) / "adaptation"
            new_arch(resolve_target(str(ARCHS_TF4 / name), trust_remote_code=True), out, use_ruff=True)
            made[name] = out
        return made[name]

    return make


@pytest.mark.tf4
@pytest.mark.slow
@needs_tf4
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_generated_adaptation_passes_its_own_test(name, generated):
    from scaffold.measure.verify import run_generated_test
    from scaffold.testkit import unfinished_todos

    out = generated(name)
    assert unfinished_todos(out) == []
    findings = json.loads((out / "inspect.json").read_text())["findings"]
    found = {f["mode"] for f in findings if f["severity"] != "ok"}
    assert set(json.loads((ARCHS_TF4 / name / "expected.json").read_text())["modes"]) <= found
    verdict = run_generated_test(out, timeout=900)
    assert verdict.passed, verdict.output_tail


@pytest.mark.tf4
@pytest.mark.slow
@needs_tf4
@pytest.mark.parametrize("name", ["tf4_layeridx", "tf4_kvshare"])
def test_adapted_replay_of_every_first_block_matches_the_real_forward(name, generated):
    out = generated(name)
    plugin = next(out.glob("*_autoround.py")).stem
    done = subprocess.run(
        [sys.executable, "-c", REPLAY_CHECK, str(out), plugin, str(ARCHS_TF4 / name)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(outcomes) >= 2 and all(o.startswith("matches") for o in outcomes.values()), outcomes


@pytest.mark.tf4
@pytest.mark.slow
@needs_tf4
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_adaptation_removes_the_stock_symptom_on_the_model_as_shipped(name, generated, tmp_path):
    """The corpus folder's own config (3 layers where the tiny instance has 2), quantized through the plugin."""
    out = generated(name)
    plugin = next(out.glob("*_autoround.py")).stem
    done = subprocess.run(
        [sys.executable, "-c", SHIPPED_CHECK, str(out), plugin, str(ARCHS_TF4 / name), str(tmp_path / "export")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    info = json.loads((ARCHS_TF4 / name / "expected.json").read_text())
    assert run["ok"], run["error"]
    assert not info.get("stock_warning") or not any(info["stock_warning"] in w for w in run["warnings"])
    assert run["packed"] > 0
