"""What a result was produced with: package versions and the machine (no heavy imports)."""

from __future__ import annotations

import functools
import os
import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("harness", "lm_eval", "torch", "transformers", "peft", "vllm", "numpy", "scipy")


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on (a fresh dict each call)."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, str]:
    # looked up once per process: each lookup scans the installed distributions (50 ms; a compare
    # of 69 tasks x 2 models spent 6.6 s here)
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, str]:
    return {"platform": platform.platform(), "machine": platform.machine(), "cpus": str(os.cpu_count() or "?")}


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo: bfloat16 matrix units or instructions


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def auto_dtype(device: str) -> tuple[str, str]:
    """`dtype: auto`: bfloat16 where the hardware computes it natively (a GPU with bf16; a CPU with AMX
    or AVX-512 BF16, where bf16 matrix work runs ~4x faster than float32), float32 elsewhere; with
    the reason, for the log and the report."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bfloat16", f"{torch.cuda.get_device_name(torch.device(device))} computes bfloat16"
        return "float32", "this GPU has no bfloat16"
    found = [f for f in BF16_CPU_FLAGS if f in cpu_flags()]
    if found:
        return "bfloat16", f"the CPU has {' and '.join(found)}"
    return "float32", "the CPU has neither AMX nor AVX-512 BF16"


class PeakMemory:
    """Peak memory while a block runs, in MB: on a CUDA device the most torch allocated on it; on a
    CPU the process's peak resident set (Linux: VmHWM, reset through /proc/self/clear_refs), the
    whole process and not the model alone. `mb` is None without `measure`, and where the peak cannot
    be reset and read (VmHWM would then be the process's peak since it started)."""

    def __init__(self, device: str, measure: bool = True):
        self.device, self.measure, self.mb, self._reset = device, measure, None, False

    def __enter__(self) -> PeakMemory:
        if not self.measure:
            pass
        elif self.device.startswith("cuda"):
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats(self.device)
                self._reset = True
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current resident set
                self._reset = True
            except OSError:
                pass
        return self

    def __exit__(self, *exc) -> None:
        if not self._reset:
            return
        if self.device.startswith("cuda"):
            import torch

            self.mb = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
            return
        try:
            with open("/proc/self/status") as f:
                line = next(x for x in f if x.startswith("VmHWM:"))
            self.mb = round(int(line.split()[1]) / 1024, 1)
        except (OSError, StopIteration, ValueError):
            self.mb = None
