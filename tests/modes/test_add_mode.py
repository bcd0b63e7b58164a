"""``scaffold dev add-mode``: the skeleton registers, fails the self-test until filled, then runs end to end.

Works on a copy of the sources (scaffold/, templates/, the mode tests and one corpus arch), never the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scaffold.dev.add_mode import add_mode
from scaffold.errors import ScaffoldError

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("scaffold", "templates", "tests/modes", "tests/inspect_archs", "tests/archs/custom_linear")


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for rel in COPIED:
        shutil.copytree(ROOT / rel, root / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel in ("pyproject.toml", "tests/conftest.py", "tests/conftest_patch.py"):
        shutil.copy2(ROOT / rel, root / rel)
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True, timeout=600)


def test_add_mode_refuses_bad_names_and_existing_modes(tmp_path):
    root = _copy(tmp_path)
    for name, message in (("Bad-Name", "lower_snake_case"), ("fused_moe", "exists already")):
        with pytest.raises(ScaffoldError, match=message):
            add_mode(name, root)
    assert not (root / "scaffold/modes/Bad-Name").exists()


def test_skeleton_is_registered_and_marked(tmp_path):
    root = _copy(tmp_path)
    written = {p.relative_to(root).as_posix() for p in add_mode("toy_mode", root)}
    assert {"scaffold/modes/toy_mode/detect.py", "tests/modes/toy_mode/test_toy_mode.py", "pyproject.toml"} <= written
    assert "templates/modes/toy_mode/toy_mode.py.jinja" in written
    assert '    TOY_MODE = "toy_mode"\n    STOCK_RUN' in (root / "scaffold/inspection/findings.py").read_text()
    registry = (root / "scaffold/modes/__init__.py").read_text()
    assert "    toy_mode,\n" in registry and "        toy_mode.SPEC,\n" in registry
    assert '"scaffold.modes.toy_mode",' in (root / "pyproject.toml").read_text()
    for part in ("detect.py", "generate.py", "check.py", "__init__.py"):
        assert "TODO(scaffold):" in (root / "scaffold/modes/toy_mode" / part).read_text()
    lint = subprocess.run(["ruff", "check", "scaffold/modes/toy_mode", "tests/modes/toy_mode"], cwd=root)
    assert lint.returncode == 0


DETECT = '''"""toy_mode: a toy that reports the output head (to exercise the registry end to end)."""

from __future__ import annotations

from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode, Severity


def detect(ctx: InspectContext) -> list[Finding]:
    heads = [name for name, _ in ctx.meta_model.named_modules() if name.endswith("lm_head")]
    summary = f"toy: {len(heads)} output head(s)"
    return [Finding(Mode.TOY_MODE, Severity.SILENT, summary, "nothing to do", modules=heads)] if heads else []
'''
GENERATE = '''"""toy_mode: records the heads for its check."""

from __future__ import annotations

from scaffold.plan.model import PlanItem


def generate(finding, plan, ctx=None) -> None:
    plan.test_data["toy_mode"] = {"heads": finding.modules}
    plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, generated=["toy facts"]))
'''
CHECK = '''"""toy_mode's check: the recorded heads exist."""

from __future__ import annotations

from scaffold.modes.contract import Check


def problems(tiny, test_data) -> list[str]:
    names = {name for name, _ in tiny.model.named_modules()}
    return [f"no {head}" for head in test_data.get("toy_mode", {}).get("heads", []) if head not in names]


CHECK = Check(test="test_autoround_registries_know_the_model", problems=problems)
'''


@pytest.mark.slow
def test_a_filled_toy_mode_passes_the_self_test_and_runs_end_to_end(tmp_path):
    root = _copy(tmp_path)
    done = _run(root, "-m", "scaffold", "dev", "add-mode", "toy_mode")
    assert done.returncode == 0, done.stderr
    self_test = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/modes/test_registry.py", "tests/modes/toy_mode")
    unfilled = _run(root, *self_test)
    assert unfilled.returncode == 1 and "toy_mode" in unfilled.stdout  # the skeleton fails until filled

    package = root / "scaffold/modes/toy_mode"
    (package / "detect.py").write_text(DETECT)
    (package / "generate.py").write_text(GENERATE)
    (package / "check.py").write_text(CHECK)
    init = (package / "__init__.py").read_text()
    kept = [line for line in init.splitlines(keepends=True) if "TODO(scaffold)" not in line and "# or " not in line]
    init = "".join(kept)
    (package / "__init__.py").write_text(init.replace('"tests/archs/toy_mode"', '"tests/archs/custom_linear"'))
    (package / "README.md").write_text("# toy_mode\n\nA toy that reports the output head.\n")

    filled = _run(root, *self_test)
    assert filled.returncode == 0, filled.stdout[-3000:]
    out = root / "generated" / "scaflin"
    target = ("tests/archs/custom_linear", "--trust-remote-code", "--out", str(out))
    arch = _run(root, "-m", "scaffold", "new-arch", *target)
    assert arch.returncode == 0, arch.stderr[-3000:]
    assert "toy_mode" in (out / "REPORT.md").read_text()
    test = (out / "test_scaflin.py").read_text()
    assert '"toy_mode": {' in test  # its facts, under its mode value
    registries = test[test.index("def test_autoround_registries_know_the_model") :].split("& set(TEST_DATA)")[0]
    assert '"toy_mode"' in registries  # that test runs its check: the registry names the keys each test reads
