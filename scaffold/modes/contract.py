"""The contract every failure mode fulfils, checked when it registers (a missing part fails at import).

A mode is a package ``scaffold/modes/<mode>/`` whose ``__init__.py`` declares ``SPEC = ModeSpec(...)``:
its :class:`~scaffold.inspection.findings.Mode`, a detector module (``detect(ctx) -> list[Finding]``), a generator
module (``generate(finding, plan, ctx) -> None``), its test-time :class:`Check` and the corpus case that
trips it. ``scaffold/modes/__init__.py`` imports every mode package by name and registers the specs in
order; ``docs/adding-a-mode.md`` walks through adding one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from scaffold.inspection.findings import Mode

if TYPE_CHECKING:
    from scaffold.inspection.context import InspectContext
    from scaffold.inspection.findings import Finding
    from scaffold.plan.model import Plan

# The generated tests (templates/adaptation/test_{{ slug }}.py.jinja) a mode's check can run in.
GENERATED_TESTS = (
    "test_autoround_registries_know_the_model",
    "test_replacements_match_the_original_modules",
    "test_autoround_replays_blocks_like_the_model",
    "test_autoround_quantizes_exactly_what_was_predicted",
)


class ModeError(TypeError):
    """A mode that does not fulfil the contract (raised at registration, i.e. at import)."""


@runtime_checkable
class Detector(Protocol):
    """Finds one failure mode on a target: a module (``detect.py``) with this function."""

    def detect(self, ctx: InspectContext) -> list[Finding]: ...


@runtime_checkable
class Generator(Protocol):
    """Turns one finding of its mode into plan data: a module (``generate.py``) with this function."""

    def generate(self, finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None: ...


Problems = Callable[[Any, Mapping[str, Any]], list[str]]  # (tiny instance, TEST_DATA) -> what is still wrong


@dataclass(frozen=True)
class Check:
    """What the generated test verifies for a mode once the adaptation is applied.

    ``test`` names the generated test that runs it (one of :data:`GENERATED_TESTS`); ``problems`` reads the
    mode's own ``TEST_DATA[<mode value>]`` and lists what the adapted AutoRound still gets wrong (empty: fixed). A mode
    whose fix only shows in what AutoRound packs has ``problems=None`` and the prediction test as ``test``.
    """

    test: str
    problems: Problems | None = None

    def __post_init__(self) -> None:
        if self.test not in GENERATED_TESTS:
            raise ModeError(f"check test {self.test!r} is not one of the generated tests {GENERATED_TESTS}")
        if self.problems is not None and not callable(self.problems):
            raise ModeError("check problems must be callable (tiny, test_data) -> list[str]")


@dataclass(frozen=True)
class ModeSpec:
    """One failure mode, validated on creation (like auto-round's ``ReplacementModuleBase.__init_subclass__``).

    ``fixture`` is the corpus case that trips the mode: ``tests/...`` (a model folder) or
    ``tests.inspect_archs.<module>:<model_type>`` (a hand-written arch); ``tests/modes/<mode>/`` tests it.
    The generator writes its check's facts under one ``TEST_DATA`` key, the mode's value, as a dict or a list
    (:meth:`test_data_problem`, enforced by ``scaffold.plan.generate.build_plan``).
    """

    mode: Mode
    detector: Detector
    generator: Generator
    check: Check
    fixture: str
    needs_tiny: bool = False  # the detector needs the tiny instance (a dynamic probe), not only the meta skeleton
    depends_on: tuple[Mode, ...] = ()  # modes whose findings it reads (ctx.findings): registered before it

    def __post_init__(self) -> None:
        name = getattr(self.mode, "value", self.mode)
        if not isinstance(self.mode, Mode):
            raise ModeError(f"{name!r} is not a scaffold.inspection.findings.Mode member")
        if not isinstance(self.detector, Detector):
            raise ModeError(f"{name}: the detector has no detect(ctx) function")
        if not isinstance(self.generator, Generator):
            raise ModeError(f"{name}: the generator has no generate(finding, plan, ctx) function")
        if not isinstance(self.check, Check):
            raise ModeError(f"{name}: no Check declared (check.py's CHECK)")
        if not self.fixture or not self.fixture.startswith("tests"):
            raise ModeError(f"{name}: no corpus fixture (a tests/ folder or tests.inspect_archs case)")
        if self.mode in self.depends_on or not all(isinstance(m, Mode) for m in self.depends_on):
            raise ModeError(f"{name}: depends_on must list other Mode members")

    @property
    def name(self) -> str:
        return self.mode.value

    def test_data_problem(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
        """How one generator call, ``before`` -> ``after`` (a deep copy, then the plan's), broke the ``TEST_DATA``
        rule (None: it did not): a mode writes one key, its value, holding a dict or a list, and no other key.
        """
        changed = sorted(key for key in {*before, *after} - {self.name} if before.get(key) != after.get(key))
        if changed:
            return f"the {self.name} generator wrote TEST_DATA keys other than {self.name!r}: {changed}"
        facts = after.get(self.name)
        if self.name in after and not isinstance(facts, dict | list):
            kind = type(facts).__name__
            return f"the {self.name} generator wrote TEST_DATA[{self.name!r}] as a {kind}, not a dict or a list"
        return None


class Registry:
    """The registered modes in detection order; refuses duplicates and unknown dependencies."""

    def __init__(self, specs: Iterable[ModeSpec] = ()) -> None:
        self.specs: list[ModeSpec] = []
        for spec in specs:
            self.register(spec)

    def register(self, spec: ModeSpec) -> ModeSpec:
        if not isinstance(spec, ModeSpec):
            raise ModeError(f"{spec!r} is not a ModeSpec")
        known = {s.mode for s in self.specs}
        if spec.mode in known:
            raise ModeError(f"{spec.name} is registered twice")
        missing = [m.value for m in spec.depends_on if m not in known]
        if missing:
            raise ModeError(f"{spec.name} depends on {missing}, which must be registered before it")
        self.specs.append(spec)
        return spec

    def by_mode(self, mode: Mode) -> ModeSpec:
        for spec in self.specs:
            if spec.mode is mode:
                return spec
        raise KeyError(mode)

    def checked_by(self, test: str) -> list[str]:
        """The modes whose check runs in generated test ``test``: the ``TEST_DATA`` keys it reads."""
        return [spec.name for spec in self.specs if spec.check.test == test and spec.check.problems is not None]

    def missing(self) -> list[str]:
        """Mode members no spec registers (a mode added to ``findings.Mode`` but not here)."""
        known = {s.mode for s in self.specs}
        return [m.value for m in Mode if m not in known]

    def __iter__(self):
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)
