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


BF16_FAST_CPU_FLAGS = ("amx_bf16",)  # /proc/cpuinfo: bfloat16 matrix units (Intel AMX)


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
    """`dtype: auto` (and the trainer's `precision: auto`): bfloat16 where the hardware computes it
    faster than float32, float32 elsewhere; with the reason, for the log and the report.

    On a GPU: bfloat16 where it supports it. On a CPU: only with AMX, where bf16 matrix work runs ~4x
    faster than float32 (notes/real-model.md). AVX-512 BF16 alone is not enough: on such a Xeon a
    SmolLM2 forward and a 1024x1024 matmul took as long in bfloat16 as in float32 (13.6 ms against
    11.2), so float32, the more exact, is chosen; without any bf16 instructions (AVX2: AMD before
    Zen 4, Intel before Cooper Lake) torch computes bfloat16 ~160x slower."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bfloat16", f"{torch.cuda.get_device_name(torch.device(device))} computes bfloat16"
        return "float32", "this GPU has no bfloat16"
    flags = cpu_flags()
    if any(f in flags for f in BF16_FAST_CPU_FLAGS):
        return "bfloat16", "the CPU has AMX (bfloat16 matrix units)"
    if "avx512_bf16" in flags:
        return "float32", "the CPU has AVX-512 BF16 but no AMX: bfloat16 is no faster than float32 there"
    return "float32", "the CPU has no bfloat16 instructions (neither AMX nor AVX-512 BF16)"


@functools.cache
def bf16_matmul_ms(size: int = 256, repeats: int = 3) -> tuple[float, float]:
    """One `size`x`size` matmul's milliseconds in float32 and in bfloat16 on this CPU (best of
    `repeats`): a few milliseconds where bf16 is native, ~40 ms at most where torch emulates it."""
    import time

    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    out = []
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y  # warm-up: the first call picks and builds the kernel
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            x @ y
            best = min(best, time.perf_counter() - t)
        out.append(best * 1e3)
    return out[0], out[1]


SLOW_BF16_RATIO = 2.0  # a pinned bfloat16 this many times slower than float32 is warned about


def pinned_bf16_warning(device: str) -> str | None:
    """Where a config pins bfloat16 on a CPU that computes it slowly: the measured slowdown and what to
    do (None on a GPU, on an AMX CPU, or where bfloat16 measured no slower than SLOW_BF16_RATIO)."""
    if device.startswith("cuda") or any(f in cpu_flags() for f in BF16_FAST_CPU_FLAGS):
        return None
    f32, bf16 = bf16_matmul_ms()
    if bf16 < SLOW_BF16_RATIO * f32:
        return None
    return (f"bfloat16 is pinned, but this CPU computes it {bf16 / f32:.0f}x slower than float32 (a 256x256 "
            f"matmul: {bf16:.1f} ms against {f32:.2f} ms; it has no AMX); it runs as asked: use `auto` to let "
            "the machine choose")


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
