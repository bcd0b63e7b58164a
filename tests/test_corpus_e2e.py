"""The proof: every corpus architecture that breaks stock AutoRound works after `scaffold new-arch`.

For each folder in tests/archs: `inspect` names exactly the failure modes in its expected.json, then
`new-arch` generates an adaptation whose generated test passes with no hand edits, both through the
runtime plugin and through a patched AutoRound checkout (the PyPI sdist of the installed version).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaffold.inspection.findings import Severity
from scaffold.inspection.stage import inspect_target
from scaffold.measure.verify import run_generated_test
from scaffold.plan.generate import new_arch
from scaffold.resolve.target import resolve_target

# AutoRound bf16 support simulated off, then on: the verdicts must not depend on the machine.
pytestmark = pytest.mark.usefixtures("autoround_bf16")

ARCHS = Path(__file__).parent / "archs"
NAMES = sorted(p.name for p in ARCHS.iterdir() if (p / "expected.json").is_file())


def expected(name: str) -> dict:
    return json.loads((ARCHS / name / "expected.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_inspect_names_exactly_the_expected_failure_modes(name):
    report = inspect_target(resolve_target(str(ARCHS / name), trust_remote_code=True))
    found = {f.mode.value for f in report.findings if f.severity is not Severity.OK}
    assert found == set(expected(name)["modes"]), [f.summary for f in report.problems]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_new_arch_makes_the_architecture_quantize(name, autoround_checkout, tmp_path):
    out = tmp_path / "generated"
    result = new_arch(resolve_target(str(ARCHS / name), trust_remote_code=True), out, autoround=autoround_checkout)
    assert not [todo for item in result.plan.items for todo in item.todos], "a TODO(scaffold) blocks this arch"
    for adaptation, checkout in (("plugin", None), ("checkout", autoround_checkout)):
        verdict = run_generated_test(out, checkout=checkout)
        print(name, adaptation, verdict.data)
        assert verdict.passed, f"{adaptation}: {verdict.output_tail}"
        assert verdict.data["adaptation"] == adaptation
        assert verdict.data["layers_quantized"] == verdict.data["layers_expected"] > 0
