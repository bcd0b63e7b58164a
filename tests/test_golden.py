"""Golden output: `generated/bloom` and `generated/scafmoe` are what the tool generates today.

`generated/bloom` (a transformers model, block_replay) is the showcase whose test passes in both bf16 modes;
`generated/scafmoe` is corpus arch tests/archs/fused_experts (remote code, fused_moe: the replacement class,
its registry edits and equivalence facts), kept next to bloom so pytest does not collect its generated test.
Set ``SCAFFOLD_UPDATE_GOLDEN=1`` to rewrite the committed folders from the current tool instead of failing
(then review ``git diff generated/``).
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest

from scaffold.measure.verify import run_generated_test
from scaffold.plan.generate import new_arch
from scaffold.resolve.target import resolve_target

REPO = Path(__file__).resolve().parent.parent
UPDATE_ENV = "SCAFFOLD_UPDATE_GOLDEN"
# target -> (committed folder, trust_remote_code)
GOLDEN = {
    "transformers:bloom": (REPO / "generated" / "bloom", False),
    "tests/archs/fused_experts": (REPO / "generated" / "scafmoe", True),
}


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def first_difference(committed: dict[str, bytes], fresh: dict[str, bytes]) -> str:
    if set(committed) != set(fresh):
        only, new = sorted(set(committed) - set(fresh)), sorted(set(fresh) - set(committed))
        return f"files differ: only committed {only}, only regenerated {new}"
    for name in committed:
        if committed[name] != fresh[name]:
            old = committed[name].decode("utf-8", "replace").splitlines()
            new = fresh[name].decode("utf-8", "replace").splitlines()
            return "\n".join(
                list(difflib.unified_diff(old, new, f"committed/{name}", f"regenerated/{name}", lineterm=""))[:60]
            )
    return ""


@pytest.mark.parametrize("target", list(GOLDEN))
def test_committed_output_is_what_the_tool_generates(target, tmp_path, monkeypatch):
    golden, trust_remote_code = GOLDEN[target]
    fresh = tmp_path / golden.name
    monkeypatch.chdir(REPO)  # local targets are given relative to the repository, as recorded in the output
    if not golden.exists() and os.environ.get(UPDATE_ENV) != "1":
        pytest.fail(f"{golden} is not committed (run with {UPDATE_ENV}=1 to create it)")
    new_arch(resolve_target(target, trust_remote_code=trust_remote_code), golden, write_to=fresh)
    difference = first_difference(files(golden) if golden.exists() else {}, files(fresh))
    if difference and os.environ.get(UPDATE_ENV) == "1":
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(fresh, golden)
        return
    assert not difference, f"{golden} is stale (rerun with {UPDATE_ENV}=1 and review the diff):\n{difference}"


@pytest.mark.slow
@pytest.mark.parametrize("target", list(GOLDEN))
def test_committed_test_passes(target, autoround_bf16):
    verdict = run_generated_test(GOLDEN[target][0])
    assert verdict.passed, verdict.output_tail
    assert verdict.data["amp_dtype"] == ("bfloat16" if autoround_bf16 == "on" else "float32")
    assert verdict.data["layers_quantized"] == verdict.data["layers_expected"] > 0
