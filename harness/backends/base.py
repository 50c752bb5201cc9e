"""The backend protocol: load a model group once, then score lm-eval requests per variant.

A model group is a base model and the LoRA candidates that share it (or a single fully
fine-tuned model). Variant "base" is the base alone; any other variant is a candidate's name.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # lm-eval is heavy to import; planning and reporting do not need it
    from lm_eval.api.model import LM

    from harness.records import PromptFormat


def render_chat(tokenizer, chat_history: list[dict[str, str]], add_generation_prompt: bool,
                prompt: PromptFormat, who: str, **template_args) -> str:
    """lm-eval's `apply_chat_template` (HFLM's call, lm-eval 0.4.13) with the model's own template
    text, for both backends. Where lm-eval drops the system turn without a word when a template
    refuses it (lm-eval #2069), this says so and stops: the model would be scored on other prompts
    than the config asks for."""
    import jinja2

    from harness.errors import HarnessError

    try:
        return tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt, chat_template=prompt.template, **template_args)
    except jinja2.TemplateError as e:
        where = "the tokenizer's chat template" if prompt.source == "tokenizer" else f"chat template {prompt.source}"
        if any(m.get("role") == "system" for m in chat_history):
            raise HarnessError(
                f"{who}: {where} fails on a system message ({e}): it has no system role. Drop "
                f"`system_prompt` for {who} (or the task's `description`, which lm-eval sends as the system "
                "message), or give a template that takes one") from None
        raise HarnessError(f"{who}: {where} failed to render a prompt: {e}") from None

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

    def activate(self, variant: str, prompt: PromptFormat | None = None,
                 who: str = "", scoring: str = "") -> AbstractContextManager[LM]:
        """A context in which the returned lm-eval LM scores as `variant`, rendering chat prompts in
        `prompt`'s template (`who` names the model in errors). `scoring` "letters": multiple-choice
        read from the first answer token (a served model's alternatives; on local weights that is the
        log-likelihood of the one-token choice, as lm-eval asks it)."""
        ...

    def close(self) -> None:
        """Release the model's memory."""
        ...
