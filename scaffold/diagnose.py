"""Turn an exception raised while loading a target's config or code into one actionable line.

Each rule recognises one kind of load failure and says what the user can do about it.
Add a rule by appending a function to ``RULES``; the first one that answers wins.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable

from scaffold.errors import ScaffoldError

Rule = Callable[[BaseException, str], "str | None"]


def _missing_package(exc: BaseException, stage: str) -> str | None:
    match = re.search(r"requires the following packages that were not found in your environment: ([^.]+)", str(exc))
    if match:
        return f"the model's code imports packages that are not installed: {match.group(1).strip()}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"the model's code imports '{exc.name}', which is not installed"
    return None


RULES: list[Rule] = [_missing_package]


def cause_of(exc: BaseException, stage: str) -> str:
    for rule in RULES:
        text = rule(exc, stage)
        if text:
            return text
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip()


def diagnose_load_error(exc: BaseException, *, stage: str, where: str = "") -> ScaffoldError:
    """Build the :class:`ScaffoldError` for a failure at ``stage`` (config, import, build, forward)."""
    error = ScaffoldError(f"{where + ': ' if where else ''}{cause_of(exc, stage)}", stage)
    error.traceback_text = "".join(traceback.format_exception(exc))  # shown with --verbose
    return error
