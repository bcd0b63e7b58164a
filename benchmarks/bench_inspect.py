"""Time `scaffold inspect --static transformers:deepseek_v3` against its bare cost.

Bare cost = `import torch, transformers` + building the 671B model on the meta device.
Each side runs in a fresh subprocess; prints both times, their ratio (target <= 1.5) and the
peak RSS of the inspect run (target < 1 GB).

    python benchmarks/bench_inspect.py [model_type]
"""

from __future__ import annotations

import subprocess
import sys
import time

BARE = """
import resource, torch, transformers
from transformers import AutoConfig, AutoModelForCausalLM
config = AutoConfig.for_model({model_type!r})
with torch.device("meta"):
    AutoModelForCausalLM.from_config(config)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

INSPECT = """
import resource, sys
from scaffold.cli import app
try:
    app(["inspect", "--static", "--json", "transformers:{model_type}"])
except SystemExit:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def timed(code: str) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    rss_kb = int((done.stdout + done.stderr).strip().splitlines()[-1])
    return seconds, rss_kb


def main() -> None:
    model_type = sys.argv[1] if len(sys.argv) > 1 else "deepseek_v3"
    bare_s, bare_rss = timed(BARE.format(model_type=model_type))
    inspect_s, inspect_rss = timed(INSPECT.format(model_type=model_type))
    print(f"model_type          {model_type}")
    print(f"bare import+meta    {bare_s:6.2f} s   peak RSS {bare_rss / 1024:7.1f} MiB")
    print(f"scaffold inspect    {inspect_s:6.2f} s   peak RSS {inspect_rss / 1024:7.1f} MiB")
    print(f"ratio               {inspect_s / bare_s:6.2f}   (target <= 1.5; RSS target < 1024 MiB)")


if __name__ == "__main__":
    main()
