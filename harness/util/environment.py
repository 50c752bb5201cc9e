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
