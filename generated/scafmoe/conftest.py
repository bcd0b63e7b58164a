"""Options of the generated test: ``--real`` runs it on the real checkpoint (needs a CUDA GPU)."""

from __future__ import annotations

import contextlib


def pytest_addoption(parser):
    with contextlib.suppress(ValueError):  # another generated folder in the same run added it already
        parser.addoption("--real", action="store_true", default=False, help="also run on the real checkpoint")


def pytest_configure(config):
    config.addinivalue_line("markers", "real: runs on a real checkpoint and needs a GPU")
