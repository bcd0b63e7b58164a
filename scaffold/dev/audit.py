"""The registry self-audit: every registered mode has all its parts, on disk and in its spec.

``tests/modes/test_registry.py`` runs it on the checkout; ``root`` may be any copy of the source tree.
"""

from __future__ import annotations

import re
from pathlib import Path

from scaffold.markers import TODO_MARK
from scaffold.modes.contract import ModeSpec

PARTS = ("__init__.py", "detect.py", "generate.py", "check.py", "README.md")
ADAPTATION_TEST = Path("templates") / "adaptation" / "test_{{ slug }}.py.jinja"


def mode_tests(root: Path, name: str) -> Path:
    return root / "tests" / "modes" / name / f"test_{name}.py"


def fixture_problem(root: Path, fixture: str) -> str | None:
    """Why ``fixture`` names no corpus case under ``root`` (None when it does)."""
    if ":" in fixture:  # tests.inspect_archs.<module>:<model_type>
        module, _, case = fixture.partition(":")
        path = root / (module.replace(".", "/") + ".py")
        if not path.is_file():
            return f"fixture module {path.relative_to(root)} does not exist"
        text = path.read_text(encoding="utf-8")
        if not re.search(rf"""["']{re.escape(case)}["']\s*:""", text):
            return f"fixture case {case!r} is not in {path.relative_to(root)}'s ARCHS"
        return None
    if not (root / fixture / "config.json").is_file():
        return f"fixture folder {fixture} has no config.json"
    return None


def audit(spec: ModeSpec, root: Path) -> list[str]:
    """What mode ``spec`` lacks in the tree at ``root`` (empty: complete)."""
    name, package = spec.name, root / "scaffold" / "modes" / spec.name
    problems = [f"{name}: no {part} in scaffold/modes/{name}/" for part in PARTS if not (package / part).is_file()]
    tests = mode_tests(root, name)
    if not tests.is_file():
        problems.append(f"{name}: no tests/modes/{name}/{tests.name}")
    fixture = fixture_problem(root, spec.fixture)
    if fixture:
        problems.append(f"{name}: {fixture}")
    template = (root / ADAPTATION_TEST).read_text(encoding="utf-8") if (root / ADAPTATION_TEST).is_file() else ""
    if f"def {spec.check.test}(" not in template:
        problems.append(f"{name}: its check's test {spec.check.test} is not in {ADAPTATION_TEST}")
    for path in [*(package / part for part in PARTS), tests]:
        if path.is_file() and f"{TODO_MARK}:" in path.read_text(encoding="utf-8"):
            problems.append(f"{name}: {path.relative_to(root)} still has '{TODO_MARK}:' markers to fill")
    return problems


def audit_all(root: Path) -> list[str]:
    """Problems of every registered mode, plus ``Mode`` members and mode folders without a registration."""
    import scaffold.modes as modes

    registry = modes.REGISTRY
    problems = [f"{name}: a Mode member with no registered mode" for name in registry.missing()]
    registered = {spec.name for spec in registry}
    for folder in sorted((root / "scaffold" / "modes").iterdir()):
        if (folder / "__init__.py").is_file() and folder.name not in registered:
            problems.append(f"{folder.name}: scaffold/modes/{folder.name}/ is not registered in scaffold/modes/")
    for spec in registry:
        problems.extend(audit(spec, root))
    return problems
