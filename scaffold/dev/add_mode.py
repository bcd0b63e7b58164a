"""``scaffold dev add-mode NAME``: write a new failure mode's skeleton in a source checkout and register it.

Writes ``scaffold/modes/NAME/`` (``__init__``, detect, generate, check, README), ``templates/modes/NAME/`` and
``tests/modes/NAME/``; adds the ``Mode`` member (scaffold/inspection/findings.py), the registration
(scaffold/modes/__init__.py) and the package (pyproject.toml). The skeleton's parts carry ``# TODO(scaffold)``
markers: the registry self-test and the mode's own test fail until they are filled (docs/adding-a-mode.md).
"""

from __future__ import annotations

import re
from pathlib import Path

from scaffold.errors import ScaffoldError

NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
REGISTER_MARK = "        # scaffold dev add-mode registers new modes above this line\n"
ENUM_ANCHOR = '    STOCK_RUN = "stock_run"'  # new members go before the mode that must stay last


def source_root() -> Path:
    """The checkout this ``scaffold`` package runs from (add-mode edits sources, not an installed wheel)."""
    return Path(__file__).resolve().parents[2]


def _files(name: str) -> dict[str, str]:
    member = name.upper()
    return {
        f"scaffold/modes/{name}/__init__.py": (
            f'''"""The {name} failure mode: its detector, generator, check and corpus fixture (see README.md)."""

from scaffold.inspection.findings import Mode
from scaffold.modes.contract import ModeSpec
from scaffold.modes.{name} import check, detect, generate

SPEC = ModeSpec(
    mode=Mode.{member},
    detector=detect,
    generator=generate,
    check=check.CHECK,
    # TODO(scaffold): the corpus case that trips this mode: a tests/archs/<folder> (remote-code model)
    # or "tests.inspect_archs.static_archs:<model_type>" (a hand-written arch, add it to ARCHS).
    # A model folder written for this mode alone (config.json, auto_map) goes in tests/modes/{name}/.
    fixture="tests/archs/{name}",
    needs_tiny=False,  # True when detect() needs the tiny instance (a dynamic probe)
)
'''
        ),
        f"scaffold/modes/{name}/detect.py": (
            f'''"""{name}: what AutoRound gets wrong, found on the meta skeleton (or the tiny instance)."""

from __future__ import annotations

from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding


def detect(ctx: InspectContext) -> list[Finding]:
    # TODO(scaffold): read ctx.meta_model (or scaffold.inspection.context.tiny_or_none(ctx) for a dynamic probe)
    # and return one Finding(mode=Mode.{member}, severity=Severity.SILENT or FAILS, summary=..., fix=..., modules=[...],
    # evidence={{...}}) per problem; return [] when AutoRound handles the target.
    return []
'''
        ),
        f"scaffold/modes/{name}/generate.py": (
            f'''"""{name}: turn one finding into plan data (edits, plugin code, files, TEST_DATA facts)."""

from __future__ import annotations

from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding
from scaffold.plan.model import Plan, PlanItem


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    # TODO(scaffold): append edits (scaffold/plan/edits.py kinds) to plan.edits, and the facts check.py reads, a dict
    # or a list, to plan.test_data["{name}"] (the mode's only TEST_DATA key: build_plan refuses any other); say what
    # was generated in the PlanItem (and what a human must still do in todos).
    plan.items.append(PlanItem(mode=finding.mode.value, summary=finding.summary, generated=[], todos=[finding.fix]))
'''
        ),
        f"scaffold/modes/{name}/check.py": (
            f'''"""{name}'s check: what the generated test verifies once the adaptation is applied."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffold.modes.contract import Check


def problems(tiny: Any, test_data: Mapping[str, Any]) -> list[str]:
    # TODO(scaffold): read test_data.get("{name}") (this mode's facts, as its generator wrote them) and list what
    # the adapted AutoRound still gets wrong about tiny.model ([] when fixed, or when the generator recorded nothing).
    return []


CHECK = Check(test="test_autoround_registries_know_the_model", problems=problems)
'''
        ),
        f"scaffold/modes/{name}/README.md": f"""# {name}

TODO(scaffold): one paragraph: what stock AutoRound gets wrong, how the detector finds it, what the fix generates.

| part | where |
|---|---|
| detector (`detect(ctx)`) | `scaffold/modes/{name}/detect.py` |
| generator (`generate(finding, plan, ctx)`) | `scaffold/modes/{name}/generate.py` |
| test-time check (`CHECK`) | `scaffold/modes/{name}/check.py` |
| code templates | `templates/modes/{name}/` |
| corpus fixture | `SPEC.fixture` in `scaffold/modes/{name}/__init__.py` |
| tests | `tests/modes/{name}/` |

`TEST_DATA["{name}"]`: TODO(scaffold): the facts the generator records for the check (a dict or a list).
""",
        f"templates/modes/{name}/{name}.py.jinja": (
            f"{{# Code the {name} generator renders with "
            f'scaffold.codegen.templates.render_code("{name}/{name}.py.jinja", ...); delete if unused. #}}\n'
        ),
        f"tests/modes/{name}/test_{name}.py": (
            f'''"""{name}: its corpus fixture trips it (``SPEC.fixture``, scaffold/modes/{name}/__init__.py)."""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_{name}():
    assert "{name}" in problem_modes(fixture_findings(Mode.{member}))
'''
        ),
    }


def _insert_sorted(lines: list[str], new: str, start: str, stop: str) -> list[str]:
    """``new`` inserted in order among the lines from the one matching ``start`` to the one matching ``stop``."""
    begin = next(i for i, line in enumerate(lines) if line.startswith(start))
    end = next(i for i in range(begin, len(lines)) if lines[i].startswith(stop))
    block = sorted({*lines[begin + 1 : end], new})
    return [*lines[: begin + 1], *block, *lines[end:]]


def _edited(root: Path, name: str) -> dict[str, str]:
    """The new text of the three files that register a mode (read and checked before anything is written)."""
    member = name.upper()
    findings = (root / "scaffold/inspection/findings.py").read_text(encoding="utf-8")
    registry = (root / "scaffold/modes/__init__.py").read_text(encoding="utf-8")
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    if ENUM_ANCHOR not in findings or REGISTER_MARK not in registry or '"scaffold.modes",' not in pyproject:
        raise ScaffoldError("the checkout's findings.py, modes/__init__.py or pyproject.toml lacks its anchor", "dev")
    findings = findings.replace(ENUM_ANCHOR, f'    {member} = "{name}"\n{ENUM_ANCHOR}', 1)
    registry = registry.replace(REGISTER_MARK, f"        {name}.SPEC,\n{REGISTER_MARK}", 1)
    lines = registry.splitlines(keepends=True)
    registry = "".join(_insert_sorted(lines, f"    {name},\n", "from scaffold.modes import (", ")"))
    lines = pyproject.splitlines(keepends=True)
    package = f'    "scaffold.modes.{name}",\n'
    pyproject = "".join(_insert_sorted(lines, package, '    "scaffold.modes",', '    "scaffold.p'))
    return {
        "scaffold/inspection/findings.py": findings,
        "scaffold/modes/__init__.py": registry,
        "pyproject.toml": pyproject,
    }


def add_mode(name: str, root: Path | None = None) -> list[Path]:
    """Write mode ``name``'s skeleton under ``root`` (default: this checkout) and register it; the files written."""
    root = Path(root) if root is not None else source_root()
    if not NAME_RE.fullmatch(name):
        raise ScaffoldError(f"{name!r} is not a mode name: use lower_snake_case (a Python identifier)", "dev")
    if not (root / "pyproject.toml").is_file() or not (root / "scaffold/modes/__init__.py").is_file():
        raise ScaffoldError(f"{root} is not an autoround-scaffold source checkout (add-mode edits sources)", "dev")
    findings = (root / "scaffold/inspection/findings.py").read_text(encoding="utf-8")
    if re.search(rf'^\s+\w+ = "{name}"', findings, flags=re.M) or (root / "scaffold/modes" / name).exists():
        raise ScaffoldError(
            f"mode {name!r} exists already (scaffold/inspection/findings.py or scaffold/modes/{name}/)", "dev"
        )
    edits = _edited(root, name)
    written = []
    for rel, text in {**_files(name), **edits}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
