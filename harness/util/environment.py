"""What a result was produced with: package versions and the machine (no heavy imports)."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("harness", "lm_eval", "torch", "transformers", "peft", "vllm", "numpy", "scipy")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, str]:
    return {"platform": platform.platform(), "machine": platform.machine(), "cpus": str(os.cpu_count() or "?")}
