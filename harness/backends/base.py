"""The backend protocol: load a model group once, then score lm-eval requests per variant.

A model group is a base model and the LoRA candidates that share it (or a single fully
fine-tuned model). Variant "base" is the base alone; any other variant is a candidate's name.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # lm-eval is heavy to import; planning and reporting do not need it
    from lm_eval.api.model import LM

def check_fits(requests, max_length: int) -> None:
    """lm-eval keeps the end of a long context, but the scored continuation must fit whole: say so
    (and what to do) instead of lm-eval's bare assertion or a silently shortened score."""
    from harness.errors import HarnessError

    for key, _, continuation in requests:
        if len(continuation) > max_length:
            text = key[1] if isinstance(key, tuple) else ""
            raise HarnessError(
                f"an item's scored text is {len(continuation)} tokens, longer than the model's context of "
                f"{max_length} ({text[:50]!r}...); set `eval.max_length` if the model takes longer inputs, "
                "or leave this task out")


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
