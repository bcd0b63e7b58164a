"""Publishers' real remote code (tests/real/*), end to end with zero hand edits.

Each folder's ``PROVENANCE.json`` names the publisher's files (sha256: byte for byte) and the transformers lines
the code loads on. Those files are fetched, never committed: a folder whose files are missing or differ is
skipped, with the reason. Where stock AutoRound works (``stock: ok``) ``inspect`` exits 0; where it breaks,
``inspect`` says so (exit 1) and ``new-arch`` plus its generated test packs at least 95% of the block weights,
measured on the export. The slow tests also re-measure the stock outcome on the tiny instance.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from scaffold.versions import transformers_major

REAL = Path(__file__).parent / "real"
NAMES = sorted(p.name for p in REAL.iterdir() if (p / "PROVENANCE.json").is_file())
MIN_SHARE = 0.95


def provenance(name: str) -> dict:
    return json.loads((REAL / name / "PROVENANCE.json").read_text())


def missing_files(name: str) -> list[str]:
    """Publisher files that are absent or differ from the sha256 in PROVENANCE.json (a hand edit)."""
    wrong = []
    for file, digest in provenance(name)["sha256"].items():
        path = REAL / name / file
        if not path.is_file():
            wrong.append(f"{file} (absent)")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            wrong.append(f"{file} (differs from the publisher's)")
    return wrong


def _line() -> str:
    return "5" if transformers_major() >= 5 else "4.57"


def _require(name: str) -> dict:
    info = provenance(name)
    if _line() not in info["transformers"]:
        pytest.skip(f"{name} loads on transformers {', '.join(info['transformers'])}, not {_line()}")
    wrong = missing_files(name)
    if wrong:
        pytest.skip(f"{name}: publisher files not in place ({', '.join(wrong)}); see tests/real/README.md")
    return info


def test_every_folder_has_its_provenance_and_a_tiny_config():
    assert len(NAMES) >= 8
    for name in NAMES:
        info = provenance(name)
        assert info["repository"] and len(info["commit"]) == 40 and info["license"], name
        assert info["stock"] in ("ok", "broken") and info["covers"], name
        assert set(info["transformers"]) <= {"4.57", "5"} and info["transformers"], name
        assert set(info["paths"]) == set(info["sha256"]), name
        config = json.loads((REAL / name / "config.json").read_text())
        assert config["auto_map"] and config["vocab_size"] <= 1024, name
        layers = config.get("num_hidden_layers", config.get("n_layer"))
        width = config.get("hidden_size", config.get("n_embd"))
        assert 2 <= layers <= 4 and width <= 128 and width % 32 == 0, name


def _inspect(name: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scaffold", "inspect", str(REAL / name), "--trust-remote-code"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def check_inspect(name: str) -> None:
    info = _require(name)
    done = _inspect(name)
    expected = 0 if info["stock"] == "ok" else 1
    assert done.returncode == expected, (done.stdout + done.stderr)[-3000:]


def check_stock_and_fix(name: str) -> None:
    """Stock AutoRound on the tiny instance as PROVENANCE says; where broken, the adaptation packs >= 95%."""
    from scaffold.inspection.stage import inspect_with_context
    from scaffold.measure.stock import OK, run_stock
    from scaffold.resolve.target import resolve_target

    info = _require(name)
    target = resolve_target(str(REAL / name), trust_remote_code=True)
    _, ctx = inspect_with_context(target, group_size=32, dynamic=True)
    with tempfile.TemporaryDirectory(prefix=f"real-{name}-") as tmp:
        result = run_stock(ctx.tiny(), Path(tmp) / "stock", checkpoint_config=target.config)
        assert (result.status == OK) == (info["stock"] == "ok"), f"stock {result.status}: {result.detail()}"
        if info["stock"] == "ok":
            return
        from scaffold.measure.verify import run_generated_test
        from scaffold.plan.generate import new_arch
        from scaffold.testkit import unfinished_todos

        out = Path(tmp) / "adaptation"
        new_arch(target, out, force=True)
        assert unfinished_todos(out) == []
        verdict = run_generated_test(out, timeout=900, allow_remote_code_from=[str(REAL / name)])
        assert verdict.passed, verdict.output_tail[-3000:]
        assert verdict.data.get("counted_share", 0.0) >= MIN_SHARE, verdict.data


def fix_params(names: list[str]) -> list:
    """``names``, those whose PROVENANCE records the tool failing (``"tool": "fails ..."``) as strict xfails: the
    failure is known and written down, and the test turns red the day the tool fixes it, so the record is updated."""
    params = []
    for name in names:
        tool = str(provenance(name).get("tool", ""))
        known = tool.startswith("fails")
        params.append(pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=tool[:200])) if known else name)
    return params


MAIN = [n for n in NAMES if "5" in provenance(n)["transformers"]]
TF4 = [n for n in NAMES if "4.57" in provenance(n)["transformers"]]
needs_tf5 = pytest.mark.skipif(transformers_major() < 5, reason="the main environment (transformers 5)")
needs_tf4 = pytest.mark.skipif(transformers_major() != 4, reason="transformers 4.57 (run .ci/tf4.sh)")


@needs_tf5
@pytest.mark.parametrize("name", MAIN)
def test_inspect_verdict(name):
    check_inspect(name)


@needs_tf5
@pytest.mark.slow
@pytest.mark.parametrize("name", fix_params(MAIN))
def test_stock_outcome_and_fix(name):
    check_stock_and_fix(name)


@pytest.mark.tf4
@needs_tf4
@pytest.mark.parametrize("name", TF4)
def test_inspect_verdict_tf4(name):
    check_inspect(name)


@pytest.mark.tf4
@pytest.mark.slow
@needs_tf4
@pytest.mark.parametrize("name", fix_params(TF4))
def test_stock_outcome_and_fix_tf4(name):
    check_stock_and_fix(name)
