"""Time the dynamic probes (forward_coverage, shared_cache_keys, block_replay) on tiny instances.

Usage: python benchmarks/probe_time.py [model_type ...]   (default: llama bloom)

Prints, per target, the seconds spent building the tiny instance and in each detector, and the
findings. The target for the three probes together is under 20 s per tiny model on an idle machine.
"""

from __future__ import annotations

import sys
import time

import torch

from scaffold.autoround_api import quiet_autoround
from scaffold.inspection.stage import load_context
from scaffold.modes.block_replay import detect as block_replay
from scaffold.modes.forward_coverage import detect as forward_coverage
from scaffold.modes.shared_cache_keys import detect as shared_cache_keys
from scaffold.resolve.target import resolve_target

DETECTORS = (forward_coverage, shared_cache_keys, block_replay)


def time_target(model_type: str) -> float:
    torch.manual_seed(0)
    start = time.perf_counter()
    ctx = load_context(resolve_target(f"transformers:{model_type}"))
    ctx.tiny()
    built = time.perf_counter()
    print(f"{model_type}: context + tiny instance {built - start:.1f}s")
    findings = []
    for detector in DETECTORS:
        t0 = time.perf_counter()
        with quiet_autoround():
            found = detector.detect(ctx)
        findings += found
        print(f"  {detector.__name__.rsplit('.', 1)[-1]:<18} {time.perf_counter() - t0:6.1f}s  {len(found)} finding(s)")
    probes = time.perf_counter() - built
    print(f"  probes total        {probes:6.1f}s")
    for finding in findings:
        print(f"  - [{finding.mode.value}] {finding.summary}")
    for note in ctx.notes:
        print(f"  note: {note}")
    return probes


def main(argv: list[str]) -> None:
    import auto_round  # noqa: F401 - import cost is paid once per process, not per probe

    targets = argv or ["llama", "bloom"]
    totals = {}
    for target in targets:
        try:
            totals[target] = time_target(target)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next target
            print(f"{target}: could not probe: {type(exc).__name__}: {str(exc)[:200]}")
    print("probe seconds:", {t: round(s, 1) for t, s in totals.items()})


if __name__ == "__main__":
    main(sys.argv[1:])
