"""The precision AutoRound computes in on this host, and a switch that simulates the other CPU kind.

AutoRound tunes and replays blocks in bf16 autocast (``amp``) whenever the device supports bf16: on CUDA always,
on a CPU when ``auto_round.utils.device.CpuInfo().bf16`` is true (AVX512-BF16). Structural questions (does a
replayed block get the inputs the model gives it? does a replacement compute what the original did?) are answered
in float32 with amp off, so their verdicts do not depend on the machine; the host's own precision is reported
beside them.

``$SCAFFOLD_AUTOROUND_BF16`` = ``on`` | ``off`` makes AutoRound's CPU check answer that way (CI runs both modes on
any CPU); unset, the CPU answers for itself.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from dataclasses import asdict, dataclass

BF16_ENV = "SCAFFOLD_AUTOROUND_BF16"
STRUCTURAL_PRECISION = "float32 (amp off)"


@dataclass(frozen=True)
class HostPrecision:
    """What AutoRound computes in on this host's device when left to its defaults."""

    device: str  # "cpu" | "cuda"
    cpu: str  # CPU model name
    bf16: bool  # AutoRound's own answer (CpuInfo().bf16 on a CPU; always on CUDA)
    amp_dtype: str  # "bfloat16" (amp on) | "float32" (amp off)
    simulated: str | None = None  # "on" | "off" when $SCAFFOLD_AUTOROUND_BF16 forced the CPU check

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def line(self) -> str:
        forced = f", simulated with ${BF16_ENV}={self.simulated}" if self.simulated else ""
        return f"{self.device} ({self.cpu}): AutoRound tunes in {self.amp_dtype}{forced}"


def forced_bf16() -> bool | None:
    """The CPU bf16 answer ``$SCAFFOLD_AUTOROUND_BF16`` asks for (None: not forced)."""
    value = os.environ.get(BF16_ENV, "").strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    return None


def apply_bf16_override() -> bool | None:
    """Make AutoRound's CPU bf16 check answer as ``$SCAFFOLD_AUTOROUND_BF16`` says (idempotent; no-op when unset).

    Patches ``CpuInfo.bf16`` and drops the answer AutoRound's CPU device handle cached, before any ``AutoRound(...)``.
    """
    forced = forced_bf16()
    if forced is None:
        return None
    from auto_round.utils import device as ar_device
    from auto_round.utils.device_manager import get_ar_device

    ar_device.CpuInfo.bf16 = property(lambda self: forced)
    cpu = get_ar_device("cpu")
    if getattr(cpu, "_bf16_supported", None) is not None:
        cpu._bf16_supported = None
    return forced


@contextlib.contextmanager
def simulated_bf16(on: bool) -> Iterator[None]:
    """Within the block, AutoRound's CPU check answers ``on`` (tests of both modes in one process)."""
    old = os.environ.get(BF16_ENV)
    os.environ[BF16_ENV] = "on" if on else "off"
    try:
        apply_bf16_override()
        yield
    finally:
        from auto_round.utils import device as ar_device

        if old is None:
            os.environ.pop(BF16_ENV, None)
            ar_device.CpuInfo.bf16 = property(lambda self: self._bf16)
            from auto_round.utils.device_manager import get_ar_device

            get_ar_device("cpu")._bf16_supported = None
        else:
            os.environ[BF16_ENV] = old
            apply_bf16_override()


def cpu_model() -> str:
    try:
        import cpuinfo

        name = cpuinfo.get_cpu_info().get("brand_raw")
    except Exception:  # noqa: BLE001 - the name is only reported
        name = None
    return name or platform.processor() or platform.machine() or "unknown CPU"


def host_precision(device: str = "cpu") -> HostPrecision:
    """What AutoRound would compute in on ``device`` here (after :func:`apply_bf16_override`)."""
    import torch

    simulated = apply_bf16_override()
    if device.startswith("cuda") and torch.cuda.is_available():
        bf16 = True
    else:
        from auto_round.utils.device_manager import get_ar_device

        device, bf16 = "cpu", bool(get_ar_device("cpu").supports_bf16())
    return HostPrecision(
        device=device,
        cpu=cpu_model(),
        bf16=bf16,
        amp_dtype="bfloat16" if bf16 else "float32",
        simulated=None if simulated is None or device != "cpu" else ("on" if simulated else "off"),
    )
