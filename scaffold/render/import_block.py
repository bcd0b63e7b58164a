"""Sort and merge import lines the way ``ruff check --select I`` (isort) wants them.

Generated modules must pass ``ruff check`` even where ruff is not installed to fix them, so the
renderer builds their import block here: sections (``__future__``, standard library, third
party), ``import x`` lines before ``from x import y`` lines, names merged per module and
ordered constants, classes, then the rest.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable

LINE_LENGTH = 120


def _section(module: str) -> int:
    root = module.split(".")[0]
    if root == "__future__":
        return 0
    if root in sys.stdlib_module_names:
        return 1
    return 2


def _name_key(name: str) -> tuple[int, str, str]:
    """isort's ``order-by-type``: CONSTANTS, then Classes, then everything else."""
    bare = name.split(" as ")[0]
    if bare.isupper() and len(bare) > 1:
        kind = 0
    elif bare[:1].isupper():
        kind = 1
    else:
        kind = 2
    return kind, bare.lower(), name


def _from_line(module: str, names: list[str]) -> str:
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= LINE_LENGTH:
        return line
    body = "".join(f"    {name},\n" for name in names)
    return f"from {module} import (\n{body})"


def format_imports(lines: Iterable[str]) -> str:
    """One import block from import statements (each may hold several; duplicates are dropped)."""
    straight: dict[int, set[str]] = {}
    from_names: dict[int, dict[str, set[str]]] = {}
    for line in lines:
        for node in ast.parse(line).body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    text = f"{alias.name} as {alias.asname}" if alias.asname else alias.name
                    straight.setdefault(_section(alias.name), set()).add(text)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = {f"{a.name} as {a.asname}" if a.asname else a.name for a in node.names}
                from_names.setdefault(_section(node.module), {}).setdefault(node.module, set()).update(names)
            else:
                raise ValueError(f"not an absolute import statement: {line!r}")
    blocks = []
    for section in sorted(set(straight) | set(from_names)):
        rows = [f"import {name}" for name in sorted(straight.get(section, ()), key=lambda n: (n.lower(), n))]
        modules = from_names.get(section, {})
        for module in sorted(modules, key=lambda m: (m.lower(), m)):
            rows.append(_from_line(module, sorted(modules[module], key=_name_key)))
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)
