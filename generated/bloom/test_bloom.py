"""Tests of the AutoRound adaptation for `bloom` (BloomForCausalLM).

They run on a tiny random instance of the model, on CPU. Written and verified for
auto-round 0.16.1, transformers 5.24.0 and torch 2.13.0 (autoround-scaffold 0.2.0).

Run from anywhere: ``python -m pytest path/to/test_bloom.py -q``. By default it imports the
runtime plugin; ``SCAFFOLD_ADAPTATION=checkout`` tests a patched AutoRound checkout on
``PYTHONPATH`` instead. ``--real`` also runs the checks on the real checkpoint (needs CUDA).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scaffold import testkit

HERE = Path(__file__).resolve().parent
# The target as given to new-arch, and its folder (relative to this one inside the same repo).
TARGET = "transformers:bloom"
TARGET_PATH = ""
TRUST_REMOTE_CODE = False
PLUGIN = "bloom_autoround"
GROUP_SIZE = 128
TOLERANCE = 1e-5
# What AutoRound must pack on the tiny instance (scaffold.plan.predict at generation time).
PREDICTED = {
    "stacks": [
        "transformer.h",
    ],
    "layers": 8,
    "params": 24576,
    "block_share": 1.0,
    "group_size": 32,
    "roles": {},
}
# Facts the checks below use (written by the generators).
TEST_DATA = {
    "block_replay": [
        {
            "stack": "transformer.h",
            "cause": "alibi",
            "rewrite": "alibi",
            "function": "_patch_bloom_block_replay",
            "inputs": [
                "alibi",
            ],
            "skeleton": False,
        },
    ],
}


@pytest.fixture(scope="module")
def adaptation():
    return testkit.apply_adaptation(HERE, PLUGIN)


@pytest.fixture(scope="module")
def tiny(adaptation):
    return testkit.build_tiny_target(testkit.target_spec(HERE, TARGET, TARGET_PATH), TRUST_REMOTE_CODE)


def test_adaptation_is_finished():
    """Skeletons marked TODO(scaffold) must be finished by hand (see REPORT.md)."""
    assert testkit.unfinished_todos(HERE) == []


def test_autoround_registries_know_the_model(tiny):
    if not {
        "block_detection",
        "mllm_misdetection",
        "shared_cache_keys",
        "ignore_layers",
        "tied_weights_keys",
        "save_conversion",
    } & set(TEST_DATA):
        pytest.skip("the adaptation changes no registry this test reads")
    assert testkit.registry_problems(tiny.model, TEST_DATA) == []


def test_replacements_match_the_original_modules(tiny):
    if not TEST_DATA.get("layer_types") and not TEST_DATA.get("fused_moe"):
        pytest.skip("the adaptation replaces no module")
    result = testkit.check_equivalence(tiny, TEST_DATA, tolerance=TOLERANCE)
    assert result.problems == []
    assert sorted(result.checked) == sorted(testkit.compared_paths(TEST_DATA))


def test_autoround_replays_blocks_like_the_model(tiny):
    if not TEST_DATA.get("block_replay"):
        pytest.skip("the adaptation changes no block replay")
    assert testkit.replay_problems(tiny) == []


def test_autoround_quantizes_exactly_what_was_predicted(tiny, tmp_path):
    if PREDICTED is None:
        pytest.fail("no prediction was recorded at generation time; regenerate with `scaffold new-arch`")
    result = testkit.quantize_and_reload(
        tiny, tmp_path / "export", predicted=PREDICTED, trust_remote_code=TRUST_REMOTE_CODE
    )
    assert (result.packed_layers, result.packed_params) == (PREDICTED["layers"], PREDICTED["params"])
    assert result.block_share == pytest.approx(PREDICTED["block_share"], abs=1e-6)
    assert result.reload_ok, result.error
    assert result.finite


@pytest.mark.real
def test_real_checkpoint(request, adaptation, tmp_path):
    if not request.config.getoption("--real", default=False):
        pytest.skip("pass --real to run on the real checkpoint")
    if not torch.cuda.is_available():
        pytest.skip("the real checkpoint needs a CUDA GPU")
    if PREDICTED is None:
        pytest.fail("no prediction was recorded at generation time; regenerate with `scaffold new-arch`")
    result = testkit.quantize_real(
        testkit.target_spec(HERE, TARGET, TARGET_PATH),
        tmp_path / "export",
        predicted=PREDICTED,
        test_data=TEST_DATA,
        group_size=GROUP_SIZE,
        trust_remote_code=TRUST_REMOTE_CODE,
    )
    assert result.reload_ok, result.error
    assert result.finite
    assert (result.packed_layers, result.packed_params) == (result.expected_layers, result.expected_params)
