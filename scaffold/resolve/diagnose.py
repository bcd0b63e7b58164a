"""Turn an exception raised while loading a target's config or code into one actionable line.

Each rule recognises one kind of load failure and says what the user can do about it.
Add a rule by appending a function to ``RULES``; the first one that answers wins.
The rules read the exception, its chain and its traceback frames (the remote-code file and
line that failed, the model folder transformers was loading), never the network.
"""

from __future__ import annotations

import linecache
import re
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from scaffold.errors import ScaffoldError, first_line
from scaffold.resolve.import_needs import PACKAGE_HINTS, package_uses
from scaffold.resolve.removed_apis import find_removed

Rule = Callable[[BaseException, str], "str | None"]

_CHECK_IMPORTS = re.compile(r"requires the following packages that were not found in your environment: ([^.]+)")
_REMOTE_MODULES = "transformers_modules"
_CUDA_WORDS = re.compile(r"cuda|nvidia|flash[_ -]?att|gpu|triton", re.IGNORECASE)


# --------------------------------------------------------------------------- traceback helpers


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _frames(exc: BaseException) -> list[FrameType]:
    """Frames of ``exc``'s traceback, outermost first."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _frame_local(exc: BaseException, function: str, name: str) -> object | None:
    for frame in reversed(_frames(exc)):
        if frame.f_code.co_name == function and name in frame.f_locals:
            return frame.f_locals[name]
    return None


def _remote_frame(exc: BaseException) -> tuple[str, int, str] | None:
    """(file name, line number, source line) of the innermost frame in the model's own code."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if _REMOTE_MODULES in Path(filename).parts:
            found = (filename, tb.tb_lineno, linecache.getline(filename, tb.tb_lineno).strip())
        tb = tb.tb_next
    return found


def _where_in_code(exc: BaseException) -> str:
    frame = _remote_frame(exc)
    return f" ({Path(frame[0]).name}:{frame[1]}: `{frame[2]}`)" if frame and frame[2] else ""


def _model_dir(exc: BaseException) -> Path | None:
    """The folder transformers loaded remote code from, when the traceback shows it."""
    module_file = _frame_local(exc, "get_cached_module_file", "resolved_module_file")
    if isinstance(module_file, str) and Path(module_file).is_file():
        return Path(module_file).parent
    folder = _frame_local(exc, "get_class_from_dynamic_module", "pretrained_model_name_or_path")
    if folder is not None and Path(str(folder)).is_dir():
        return Path(str(folder))
    return None


# --------------------------------------------------------------------------- rules


def _missing_package(exc: BaseException, stage: str) -> str | None:
    """transformers' remote-code import check, or a plain missing module."""
    match = _CHECK_IMPORTS.search(str(exc))
    if match:
        packages = [p.strip() for p in match.group(1).split(",") if p.strip()]
        checked = _frame_local(exc, "check_imports", "filename")
        source_file = Path(str(checked)) if checked and Path(str(checked)).is_file() else None
        return "; ".join(_explain_package(package, source_file) for package in packages)
    if isinstance(exc, ModuleNotFoundError) and exc.name and not exc.name.startswith("transformers"):
        top = exc.name.split(".")[0]
        return f"the model's code imports '{exc.name}', which is not installed{_where_in_code(exc)}: {_install(top)}"
    return None


def _install(package: str) -> str:
    hint = PACKAGE_HINTS.get(package)
    text = f"pip install {hint.pip_name if hint else package}"
    return f"{text} (it needs a CUDA GPU)" if hint and hint.needs_cuda else text


def _explain_package(package: str, source_file: Path | None) -> str:
    if source_file is None:
        return f"the model's code imports '{package}', which is not installed: {_install(package)}"
    name = source_file.name
    folder = source_file.parent
    if (folder / f"{package}.py").is_file() or (folder / package).is_dir():
        return (
            f"{name} imports its sibling '{package}' as if it were an installed package (`from {package} import …`); "
            f"transformers only finds the model's own files through relative imports: write `from .{package} import …`"
        )
    uses = package_uses(source_file.read_text(encoding="utf-8", errors="replace"), package)
    where = f"{name}:{uses.import_line}" if uses.import_line else name
    if not uses.used_in:
        return (
            f"{where} imports '{package}' at module level but never uses it: delete the import, or {_install(package)}"
        )
    if uses.cuda_only:
        return (
            f"{where} imports '{package}' at module level but uses it only on the CUDA/flash-attention path "
            f"({', '.join(uses.used_in)}), so it is not needed on CPU: move the import under "
            f"`if is_flash_attn_2_available():` or into try/except ImportError so transformers' import check skips it"
        )
    hint = PACKAGE_HINTS.get(package)
    if hint and hint.needs_cuda:
        return (
            f"{where} needs '{package}' on CPU too (used in {', '.join(uses.used_in)}), but {hint.pip_name} "
            f"needs a CUDA GPU: give that code a PyTorch fallback guarded by an availability check, or run on a GPU"
        )
    return f"{where} needs '{package}' (used in {', '.join(uses.used_in)}): {_install(package)}"


def _removed_transformers_api(exc: BaseException, stage: str) -> str | None:
    """An API of transformers that the installed version no longer (or not yet) has."""
    from scaffold.versions import package_version

    removed = find_removed(exc)
    if removed is None:
        return None
    installed = package_version("transformers")
    known = f"transformers{removed.has_it} has it" if removed.has_it else "it was written for another transformers"
    text = f"the model's code uses {removed.api}, which transformers {installed} lacks ({known}){_where_in_code(exc)}"
    return f"{text}: {removed.instead}" if removed.instead else text


def _needs_cuda(exc: BaseException, stage: str) -> str | None:
    """Code that insists on CUDA or flash-attention while the model is built or run."""
    if not isinstance(exc, AssertionError | RuntimeError | ValueError | ImportError | OSError):
        return None
    frame = _remote_frame(exc)
    line = frame[2] if frame else ""
    if not (_CUDA_WORDS.search(str(exc)) or _CUDA_WORDS.search(line)):
        return None
    if frame is None and not isinstance(exc, AssertionError):
        return None  # a CUDA message from torch itself, not a demand of the model's code
    what = "flash-attention" if re.search(r"flash", str(exc) + line, re.IGNORECASE) else "CUDA"
    doing = "while building the model" if stage in ("build", "import", "config") else "in its forward"
    return (
        f"the model's code requires {what} {doing}{_where_in_code(exc)} and this machine has none: "
        f"make that path conditional (on `torch.cuda.is_available()` or `config._attn_implementation`) "
        f"so the model builds on CPU with eager attention"
    )


def _file_not_copied(exc: BaseException, stage: str) -> str | None:
    """A sibling file or package folder that transformers' remote-code loader did not copy."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        missing = Path(str(exc.filename))
        if _REMOTE_MODULES in missing.parts:
            return (
                f"the model's code reads '{missing.name}' next to its own file{_where_in_code(exc)}, but transformers "
                f"copies only the .py modules it imports into its module cache: load that file from the model folder "
                f"(config.name_or_path) or put its content into a .py module"
            )
        if missing.suffix == ".py" and missing.with_suffix("").is_dir():
            return (
                f"the model's code imports the package folder '{missing.stem}/' (`from .{missing.stem} import …`), but "
                f"transformers' remote-code loader copies single .py files only: flatten it into {missing.name}"
            )
    message = str(exc)
    match = re.search(r"cannot import name '(\w+)' from '(transformers_modules[\w.]*)'", message)
    if isinstance(exc, ImportError) and match:
        name = match.group(1)
        folder = _model_dir(exc)
        present = folder is not None and ((folder / f"{name}.py").is_file() or (folder / name).is_dir())
        where = f" although {name} is in {folder}" if present else ""
        return (
            f"the model's code does `from . import {name}`, which transformers' remote-code loader does not follow, so "
            f"{name} was not copied into its module cache{where}: write `from .{name} import …` instead"
        )
    return None


RULES: list[Rule] = [_missing_package, _file_not_copied, _removed_transformers_api, _needs_cuda]


def cause_of(exc: BaseException, stage: str) -> str:
    for link in _chain(exc):
        for rule in RULES:
            text = rule(link, stage)
            if text:
                return text
    return first_line(exc, limit=300) + _where_in_code(exc)


def load_stage(exc: BaseException, default: str) -> str:
    """The stage of a build failure: ``import`` when transformers was loading the remote-code modules."""
    if any(frame.f_code.co_filename.endswith("dynamic_module_utils.py") for frame in _frames(exc)):
        return "import"
    return default


def diagnose_load_error(exc: BaseException, *, stage: str, where: str = "") -> ScaffoldError:
    """Build the :class:`ScaffoldError` for a failure at ``stage`` (config, import, build, forward)."""
    error = ScaffoldError(f"{where + ': ' if where else ''}{cause_of(exc, stage)}", stage)
    error.traceback_text = "".join(traceback.format_exception(exc))  # shown with --verbose
    return error
