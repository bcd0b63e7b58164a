"""build_tiny must build and forward >= 90% of transformers' causal-LM types, with no regression.

Known failures live in tests/data/tiny_baseline.json (type -> reason): the tool's compatibility
baseline. A type failing that is not in the baseline fails this test; baseline types that now pass
are reported so the baseline can be trimmed. Regenerate the baseline with
``python tests/test_tiny_coverage.py --write-baseline`` (add ``-v`` for per-type progress).
Measured: 196 types in 155 s of CPU time (7 min wall on a loaded 2-core machine), transformers 5.24.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def transformers_version() -> str:
    import transformers

    return transformers.__version__


def _baseline_path() -> Path:
    """One baseline per transformers major version: the set of types and their defaults differ."""
    major = int(transformers_version().split(".")[0])
    return DATA / ("tiny_baseline.json" if major >= 5 else f"tiny_baseline_tf{major}.json")


BASELINE = _baseline_path()
PER_TYPE_SECONDS = 60
DEFAULT_CONFIG_BROKEN = "transformers' default config"
MIN_PASS_RATE = 0.90


def causal_lm_types() -> list[str]:
    """Every causal-LM model type of this transformers, or those in ``$TINY_COVERAGE_TYPES`` (comma separated)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    chosen = [t for t in os.environ.get("TINY_COVERAGE_TYPES", "").split(",") if t]
    return sorted(t for t in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES if not chosen or t in chosen)


class TypeTimeout(BaseException):
    """Not an ``Exception``, so the builder's per-strategy error handling cannot swallow it."""


@contextmanager
def time_guard(seconds: int):
    """Interrupt a type that takes longer than ``seconds`` (SIGALRM, main thread only)."""

    def expire(signum, frame):
        raise TypeTimeout(f"took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def try_type(model_type: str) -> str | None:
    """None when the type's tiny model builds and forwards, else a one-line reason."""
    import torch
    from transformers import AutoConfig

    from scaffold.tiny import build_tiny

    torch.manual_seed(0)
    try:
        config = AutoConfig.for_model(model_type)
    except Exception as exc:  # noqa: BLE001
        return f"{DEFAULT_CONFIG_BROKEN} is invalid: {_one_line(exc)}"
    try:
        with time_guard(PER_TYPE_SECONDS):
            tiny = build_tiny(config)
            del tiny
    except TypeTimeout as exc:
        return f"TypeTimeout: {exc}"
    except Exception as exc:  # noqa: BLE001 - the reason is the result
        full_size = _full_size_build_error(config)
        if full_size:
            return f"{DEFAULT_CONFIG_BROKEN} does not build even at full size: {full_size}"
        return _one_line(exc)
    finally:
        gc.collect()
    return None


def _full_size_build_error(config) -> str | None:
    """Whether the unshrunk default config fails to build (on the meta device): then it is not the shrinker."""
    from scaffold.build.meta import build_meta
    from scaffold.errors import ScaffoldError

    try:
        with time_guard(PER_TYPE_SECONDS):
            build_meta(config)
    except TypeTimeout:
        return None
    except ScaffoldError as exc:
        return exc.message
    except Exception as exc:  # noqa: BLE001
        return _one_line(exc)
    return None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:400]


def run_coverage(types: list[str], verbose: bool = False) -> tuple[dict[str, str], dict[str, float]]:
    failures, seconds = {}, {}
    for model_type in types:
        start = time.perf_counter()
        reason = try_type(model_type)
        seconds[model_type] = round(time.perf_counter() - start, 2)
        if reason is not None:
            failures[model_type] = reason
        if verbose:
            print(f"{model_type}: {seconds[model_type]}s {reason or 'ok'}", file=sys.stderr, flush=True)
    return failures, seconds


def load_baseline() -> dict[str, str]:
    return json.loads(BASELINE.read_text(encoding="utf-8"))["failures"] if BASELINE.exists() else {}


@pytest.mark.slow
def test_causal_lm_coverage(capsys):
    types = causal_lm_types()
    start = time.perf_counter()
    failures, seconds = run_coverage(types)
    elapsed = time.perf_counter() - start
    baseline = load_baseline()
    regressions = {t: r for t, r in failures.items() if t not in baseline}
    fixed = sorted(t for t in baseline if t in types and t not in failures)
    slowest = sorted(seconds.items(), key=lambda kv: -kv[1])[:5]
    with capsys.disabled():
        print(f"\ntiny coverage: {len(types) - len(failures)}/{len(types)} types in {elapsed:.0f}s; slowest {slowest}")
        for model_type, reason in sorted(failures.items()):
            print(f"  FAIL {model_type}: {reason}")
        if fixed:
            print(f"  now passing, remove from {BASELINE.name}: {fixed}")
    assert not regressions, f"types failing that are not in the baseline: {regressions}"
    if os.environ.get("TINY_COVERAGE_TYPES"):
        return
    # Types whose transformers default config is itself broken say nothing about the shrinker.
    buildable = [t for t in types if not failures.get(t, "").startswith(DEFAULT_CONFIG_BROKEN)]
    assert sum(t not in failures for t in buildable) / len(buildable) >= MIN_PASS_RATE
    if int(transformers_version().split(".")[0]) >= 5:
        assert (len(types) - len(failures)) / len(types) >= MIN_PASS_RATE


def main() -> None:
    """``--write-baseline``: run the coverage and record the current failures as the baseline."""
    types = causal_lm_types()
    start = time.perf_counter()
    failures, seconds = run_coverage(types, verbose="-v" in sys.argv)
    print(f"{len(types) - len(failures)}/{len(types)} pass in {time.perf_counter() - start:.0f}s")
    for model_type, reason in sorted(failures.items()):
        print(f"FAIL {model_type}: {reason}")
    if "--write-baseline" in sys.argv:
        data = {
            "transformers": transformers_version(),
            "types": len(types),
            "failures": dict(sorted(failures.items())),
        }
        BASELINE.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    if "--times" in sys.argv:
        print(json.dumps(dict(sorted(seconds.items(), key=lambda kv: -kv[1])[:20]), indent=1))


if __name__ == "__main__":
    main()
