"""Versions of the packages an adaptation is written and verified against."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def public_version(text: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``: the build variant (CPU, CUDA) is the machine's, not the version's."""
    return text.split("+", 1)[0]


def stack_versions() -> dict[str, str]:
    """The versions recorded in every report and generated adaptation (the same on a CPU and a GPU machine)."""
    from scaffold import __version__

    return {
        "autoround_scaffold": __version__,
        "auto_round": package_version("auto-round"),
        "transformers": package_version("transformers"),
        "torch": public_version(package_version("torch")),
    }


def transformers_major() -> int:
    return int(package_version("transformers").split(".")[0])
