"""Golden output: `generated/bloom` is what the tool generates today, and its test passes in both bf16 modes.

Set ``SCAFFOLD_UPDATE_GOLDEN=1`` to rewrite the committed folder from the current tool instead of failing
(then review ``git diff generated/``).
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest

from scaffold.generate import new_arch
from scaffold.resolve import resolve_target
from scaffold.verify import run_generated_test

REPO = Path(__file__).resolve().parent.parent
UPDATE_ENV = "SCAFFOLD_UPDATE_GOLDEN"
GOLDEN = {"transformers:bloom": REPO / "generated" / "bloom"}


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
def test_committed_output_is_what_the_tool_generates(target, tmp_path):
    golden = GOLDEN[target]
    fresh = tmp_path / golden.name
    new_arch(resolve_target(target), golden, write_to=fresh)  # rendered as if into the committed folder
    difference = first_difference(files(golden), files(fresh))
    if difference and os.environ.get(UPDATE_ENV) == "1":
        shutil.rmtree(golden)
        shutil.copytree(fresh, golden)
        return
    assert not difference, f"{golden} is stale (rerun with {UPDATE_ENV}=1 and review the diff):\n{difference}"


@pytest.mark.slow
def test_committed_bloom_test_passes(autoround_bf16):
    verdict = run_generated_test(GOLDEN["transformers:bloom"])
    assert verdict.passed, verdict.output_tail
    assert verdict.data["amp_dtype"] == ("bfloat16" if autoround_bf16 == "on" else "float32")
    assert verdict.data["layers_quantized"] == verdict.data["layers_expected"] > 0
