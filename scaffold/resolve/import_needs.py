"""Where a model file uses a package it imports: only on a CUDA / flash-attention path, or on CPU too.

transformers' remote-code import check demands every package imported at module level outside
``try`` blocks and ``is_*_available()`` guards, even one the CPU path never touches. Reading the
file's syntax tree tells the user whether to install the package or to guard its import.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PackageHint:
    pip_name: str  # what `pip install` takes
    needs_cuda: bool  # the package only works with a CUDA GPU


PACKAGE_HINTS: dict[str, PackageHint] = {
    "flash_attn": PackageHint("flash-attn", True),
    "xformers": PackageHint("xformers", True),
    "mamba_ssm": PackageHint("mamba-ssm", True),
    "causal_conv1d": PackageHint("causal-conv1d", True),
    "fla": PackageHint("flash-linear-attention", False),
    "bitsandbytes": PackageHint("bitsandbytes", False),
    "einops": PackageHint("einops", False),
}

# Names of functions/classes and condition texts that mark a GPU-only code path.
_GPU_PATH = re.compile(r"cuda|flash|triton|xformers|gpu|_available\(|bnb|8bit|4bit|quantiz", re.IGNORECASE)


@dataclass
class PackageUse:
    """How one module-level package is used in a file."""

    package: str
    import_line: int | None = None  # first line importing it
    used_in: list[str] = field(default_factory=list)  # qualified scopes that reference it ("module" for top level)
    cuda_only: bool = False  # every use sits on a GPU-only path


def package_uses(source: str, package: str) -> PackageUse:
    """Find the names ``source`` binds from ``package`` and classify every place that reads them."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    use = PackageUse(package)
    bound: set[str] = set()
    for node in ast.walk(tree):
        names = _bound_names(node, package)
        if names:
            bound.update(names)
            use.import_line = min(use.import_line or node.lineno, node.lineno)
    gpu_flags: list[bool] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in bound and isinstance(node.ctx, ast.Load):
            scope, on_gpu_path = _context(node, parents)
            if scope not in use.used_in:
                use.used_in.append(scope)
            gpu_flags.append(on_gpu_path)
    use.cuda_only = bool(gpu_flags) and all(gpu_flags)
    return use


def _bound_names(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] == package]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == package:
        return [a.asname or a.name for a in node.names]
    return []


def _context(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> tuple[str, bool]:
    """The qualified scope of ``node`` and whether a GPU-only function, class or condition encloses it."""
    scopes: list[str] = []
    on_gpu_path = False
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            scopes.append(parent.name)
            on_gpu_path = on_gpu_path or bool(_GPU_PATH.search(parent.name))
        elif _in_body(child, parent):
            on_gpu_path = on_gpu_path or bool(_GPU_PATH.search(ast.unparse(parent.test)))
        child, parent = parent, parents.get(parent)
    return (".".join(reversed(scopes)) or "module level"), on_gpu_path


def _in_body(child: ast.AST, parent: ast.AST) -> bool:
    """Whether ``child`` is in the then-branch of an ``if`` (statement or expression)."""
    if isinstance(parent, ast.If):
        return child in parent.body
    return isinstance(parent, ast.IfExp) and child is parent.body
