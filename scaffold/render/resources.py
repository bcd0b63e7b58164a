"""The templates the tool renders, found through the package ``scaffold.templates``.

The repository keeps them in the top-level ``templates/`` folder; ``pyproject.toml`` maps that folder to the
package ``scaffold.templates``, so a wheel ships them and an editable install finds them in place.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from scaffold.errors import ScaffoldError


@functools.cache
def templates_root() -> Path:
    """The installed ``templates/`` folder, as a real directory (copier and Jinja read it from disk)."""
    try:
        root = files("scaffold.templates")
    except ModuleNotFoundError:
        raise ScaffoldError(
            "the templates are not installed (no package scaffold.templates)",
            "render",
            hint='reinstall the tool: pip install -e ".[dev]" (or pip install .)',
        ) from None
    if not isinstance(root, Path):
        raise ScaffoldError(f"the templates are not a folder on disk ({root!r}); install the tool unzipped", "render")
    return root


def template_path(*parts: str) -> Path:
    """A folder or file under the installed templates, e.g. ``template_path("adaptation")``."""
    return templates_root().joinpath(*parts)
