"""Estimate the full causal-LM survey time from a sample of model types.

Runs the survey (isolated worker per type, same settings as ``scaffold survey``) on ``--sample``
causal-LM types spread evenly over the sorted list, writes their rows into ``--out`` (default
generated/survey, resumable: types already there for the same versions are not re-run) and
extrapolates: mean seconds per type x number of causal-LM types / jobs. Rows already present count
too, so repeated runs refine the estimate.

    python benchmarks/bench_survey.py [--sample 10] [--offset 0] [--jobs 1] [--no-fix] [--timeout 600] [--out DIR]

The full survey itself (measured: see the README's Benchmarks table; use more jobs on a bigger machine):

    time scaffold survey --all-causal-lm --jobs 2 --timeout 600 --out generated/survey
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from scaffold.survey import SurveyOptions, causal_lm_types, latest_rows, read_rows, run_survey, summarize
from scaffold.survey.render import write_outputs
from scaffold.survey.runner import RESULTS, current_versions


def spread_sample(types: list[str], size: int, offset: int = 0) -> list[str]:
    """``size`` types spread evenly over ``types`` (deterministic, covers the whole alphabet); another
    ``offset`` gives another sample."""
    if size >= len(types):
        return list(types)
    step = len(types) / size
    return [types[(int(index * step) + offset) % len(types)] for index in range(size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--offset", type=int, default=0, help="shift the spread sample to survey other types")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--no-fix", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("generated/survey"))
    parser.add_argument("--types", default="", help="comma-separated types instead of the spread sample")
    args = parser.parse_args()

    every = causal_lm_types()
    sample = [t for t in args.types.split(",") if t] or spread_sample(every, args.sample, args.offset)
    versions = current_versions()  # taken once: the rows of this run are keyed on them
    options = SurveyOptions(out=args.out, jobs=args.jobs, timeout=args.timeout, fix=not args.no_fix, versions=versions)
    start = time.perf_counter()
    new_rows = run_survey(sample, options)
    for row in new_rows:
        print(f"{row.model_type:28s} {row.seconds:7.1f} s  stock {row.stock:16s} after {row.after_scaffold}")
    wall = time.perf_counter() - start

    rows = latest_rows(read_rows(args.out / RESULTS), versions)
    write_outputs(args.out, rows, versions)
    measured = [row.seconds for row in rows if row.model_type in set(sample)]
    if not measured:
        return
    mean = statistics.mean(measured)
    # Wall time per type of this run when it surveyed the whole sample (it includes the contention between
    # jobs on a loaded machine), else the mean recorded per type divided by the jobs.
    per_type_wall = wall / len(new_rows) if len(new_rows) == len(sample) else mean / max(1, args.jobs)
    estimate = per_type_wall * len(every)
    print(f"this run: {wall:.0f} s wall for {len(new_rows)} new of {len(sample)} sampled types ({args.jobs} job(s))")
    print(f"per type: mean {mean:.0f} s, median {statistics.median(measured):.0f} s, max {max(measured):.0f} s")
    print(f"estimate for all {len(every)} causal-LM types with {args.jobs} job(s): {estimate / 3600:.1f} h")
    print(summarize(rows).line())


if __name__ == "__main__":
    main()
