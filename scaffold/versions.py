"""Versions of the packages an adaptation is written and verified against."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def stack_versions() -> dict[str, str]:
    """The versions recorded in every report and generated adaptation."""
    from scaffold import __version__

    return {
        "autoround_scaffold": __version__,
        "auto_round": package_version("auto-round"),
        "transformers": package_version("transformers"),
        "torch": package_version("torch"),
    }


def transformers_major() -> int:
    return int(package_version("transformers").split(".")[0])
