"""Tiny random instances of any architecture, for probes, generated tests and calibration runs."""

from scaffold.tiny.builder import ShrinkError, build_tiny
from scaffold.tiny.model import TinyModel
from scaffold.tiny.save import save_tiny

__all__ = ["ShrinkError", "TinyModel", "build_tiny", "save_tiny"]
