"""The backend protocol: load a model group once, then score lm-eval requests per variant.

A model group is a base model and the LoRA candidates that share it (or a single fully
fine-tuned model). Variant "base" is the base alone; any other variant is a candidate's name.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # lm-eval is heavy to import; planning and reporting do not need it
    from lm_eval.api.model import LM

BASE = "base"


class Backend(Protocol):
    name: str

    def variants(self) -> list[str]:
        """The variants this loaded model can serve."""
        ...

    def activate(self, variant: str) -> AbstractContextManager[LM]:
        """A context in which the returned lm-eval LM scores as `variant`."""
        ...

    def close(self) -> None:
        """Release the model's memory."""
        ...
