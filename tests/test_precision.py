"""Verdicts that hold on any machine: AutoRound's bf16 autocast simulated on and off gives the same answers."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from scaffold.inspection.autoround_replay import replay_outcomes
from scaffold.measure.precision import BF16_ENV, STRUCTURAL_PRECISION, host_precision, simulated_bf16
from scaffold.resolve.target import resolve_target
from scaffold.tiny import build_tiny


@pytest.mark.parametrize("on", [False, True])
def test_simulated_bf16_is_what_autoround_sees(on):
    from auto_round.utils.device import CpuInfo
    from auto_round.utils.device_manager import get_ar_device

    with simulated_bf16(on):
        assert CpuInfo().bf16 is on
        assert get_ar_device("cpu").supports_bf16() is on
        host = host_precision()
        expected = (on, "bfloat16", "on") if on else (on, "float32", "off")
        assert (host.bf16, host.amp_dtype, host.simulated) == expected


def test_autoround_tunes_in_bf16_when_the_cpu_supports_it(tmp_path):
    """The premise: with bf16 support AutoRound turns amp on (the replay must not depend on it)."""
    from scaffold.measure.quantize import run_autoround
    from scaffold.testkit import tokenizer_for
    from scaffold.tiny.tokenizer import calibration_texts

    tiny = build_tiny(resolve_target("transformers:llama").config)
    dtypes = {}
    for on in (False, True):
        with simulated_bf16(on):
            run = run_autoround(
                tiny.model, tokenizer_for(tiny), calibration_texts(), tmp_path, iters=0, group_size=32, save=False
            )
        dtypes[on] = run.amp_dtype
    assert dtypes == {False: "float32", True: "bfloat16"}


@pytest.mark.parametrize(("model_type", "broken"), [("llama", False), ("qwen2", False), ("bloom", True)])
def test_replay_verdict_is_the_same_with_amp_on_or_off(model_type, broken):
    tiny = build_tiny(resolve_target(f"transformers:{model_type}").config)
    outcomes = {}
    for on in (False, True):
        with simulated_bf16(on):
            outcomes[on] = replay_outcomes(tiny.model, tiny.inputs)
    assert outcomes[False] == outcomes[True]  # byte-identical outcomes, errors included
    matches = [outcome.startswith("matches") for outcome in outcomes[True].values()]
    assert matches and (not all(matches) if broken else all(matches)), outcomes[True]


@pytest.mark.parametrize("on", [False, True])
@pytest.mark.parametrize("model_type", ["llama", "qwen2", "mistral", "qwen3"])
def test_inspect_exits_0_for_plain_decoders_in_both_modes(model_type, on, monkeypatch):
    from scaffold.cli import app

    monkeypatch.setenv(BF16_ENV, "on" if on else "off")
    with simulated_bf16(on):
        result = CliRunner().invoke(app, ["inspect", f"transformers:{model_type}", "--json"])
    assert result.exit_code == 0, result.output[-2000:]


def test_inspect_reports_precision_and_host(monkeypatch):
    import json

    from scaffold.cli import app

    with simulated_bf16(True):
        result = CliRunner().invoke(app, ["inspect", "transformers:llama", "--json", "--static"])
    data = json.loads(result.stdout)
    assert data["precision"] == STRUCTURAL_PRECISION
    assert data["host"]["amp_dtype"] == "bfloat16" and data["host"]["simulated"] == "on"


def test_inspect_is_inconclusive_without_a_tiny_instance(monkeypatch):
    """No finding and no tiny instance: exit 3 with the reason, not "nothing to fix"."""
    import scaffold.tiny as tiny_module
    from scaffold.cli import app

    def refuse(*args, **kwargs):
        raise RuntimeError("shrinking failed for a test")

    monkeypatch.setattr(tiny_module, "build_tiny", refuse)
    result = CliRunner().invoke(app, ["inspect", "transformers:llama"])
    text = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 3, text
    assert "inconclusive" in text and "shrinking failed for a test" in text
    assert "nothing to fix" not in text


@pytest.mark.parametrize(("model_type", "status"), [("llama", "ok"), ("bloom", "crash")])
def test_inspect_reports_what_stock_autoround_did(model_type, status):
    """The report carries stock AutoRound's own outcome on the tiny instance (float32), crash frame included."""
    import json

    from scaffold.cli import app

    result = CliRunner().invoke(app, ["inspect", f"transformers:{model_type}", "--json"])
    stock = json.loads(result.stdout)["stock"]
    assert stock["status"] == status
    if status == "crash":
        assert stock["exception"].startswith("RuntimeError") and "modeling_bloom.py" in stock["raised_at"]
    else:
        assert stock["share"] == 1.0 and stock["exception"] is None
