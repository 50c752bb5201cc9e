"""The models of a comparison as the config declares them: the base, candidates, other bases and
prompting arms, each with the keys of its prompt format."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.config.common import Spec


class PromptFormatFields(Spec):
    """How a model's prompts are written: the same keys on the base and on each candidate."""

    chat_template: str = Field(
        "auto", description="auto: the tokenizer's chat template when it has one, else plain text; none: plain "
        "text; or a Jinja chat template file (relative to the config file). Applied through lm-eval's own "
        "chat-template path, as `lm-eval --apply_chat_template` does.")
    system_prompt: str | None = Field(
        None, description="System message of every prompt (lm-eval's --system_instruction); with no chat "
        "template it is written before the prompt.")
    fewshot_as_multiturn: bool = Field(
        False, description="Few-shot examples as earlier user/assistant turns, not inside the first user "
        "turn (needs a chat template).")

    @model_validator(mode="after")
    def _multiturn_needs_template(self) -> PromptFormatFields:
        if self.fewshot_as_multiturn and self.chat_template == "none":
            raise ValueError("fewshot_as_multiturn needs a chat template (chat_template is none)")
        return self


class TokenPriceSpec(Spec):
    """What a server charges per token, as hosted APIs price: input (prompt) and output (reply) tokens,
    counted from each answer's `usage`."""

    input_per_million: float = Field(ge=0, description="Price of a million prompt tokens (roi.currency).")
    output_per_million: float = Field(ge=0, description="Price of a million generated tokens (roi.currency).")


class ServedFields(Spec):
    """How a model behind an OpenAI-compatible server (eval.endpoint) is reached and priced."""

    served: str | None = Field(None, description="The model's name on the server (eval.endpoint), e.g. a vLLM "
                               "--lora-modules name or a hosted fine-tune's id. With a local folder (backend "
                               "openai) the folder gives the tokenizer and the weights' fingerprint; a candidate "
                               "with `served` alone has no local weights (a hosted fine-tune) and is known by "
                               "what the server says of it and its answers to fixed probes.")
    api: Literal["auto", "completions", "chat"] = Field(
        "auto", description="Which of the server's APIs scores it: completions (the harness renders the prompt "
        "in the model's prompt format), chat (/v1/chat/completions: the server applies its own template), or "
        "auto: completions where the server has them and the harness has the model's tokenizer, else chat.")
    tokenizer: str | None = Field(None, description="A served model without local weights: a folder or hub id "
                                  "of its tokenizer. Needed only by tasks scored by log-likelihood over tokens "
                                  "(completions with prompt log-probabilities) and for a prompt format the "
                                  "harness renders.")
    token_prices: TokenPriceSpec | None = Field(
        None, description="What the server charges for this model per million input and output tokens "
        "(default: roi.token_prices): the ROI costs its scoring and serving by the tokens its answers count.")


class ModelSpec(PromptFormatFields, ServedFields):
    """The base model: a local folder or a Hugging Face model id."""

    path: str = Field(description="Local folder (relative to the config file) or hub model id.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="Weights and compute dtype. `auto`: bfloat16 where the hardware computes it "
        "faster (a GPU with bf16, a CPU with AMX), float32 elsewhere; the log and the report say which. A pinned "
        "bfloat16 on a CPU that computes it slowly runs as asked, with the measured slowdown in a warning.")
    trust_remote_code: bool = Field(
        False, description="Run Python code shipped with the checkpoint. Off unless you trust it.")
    allow_pickle: bool = Field(
        False, description="Load pickle weights (*.bin, *.pt) where there are no safetensors. Off unless "
        "you trust them: unpickling can run code.")
    serving_hourly_price: float | None = Field(
        None, ge=0, description="Price of an hour of the machine that serves this base and its fine-tunes "
        "(default: roi.serving_hourly_price): a larger base may need a larger machine.")


class CandidateSpec(PromptFormatFields, ServedFields):
    """A fine-tuned candidate: a LoRA adapter on the base, or a fully fine-tuned model."""

    name: str = Field(description="Short name used in reports and gate ids, e.g. lora-v2.")
    adapter: str | None = Field(None, description="LoRA adapter folder (peft, safetensors).")
    path: str | None = Field(None, description="Fully fine-tuned model folder or hub id.")
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    allow_different_tokenizer: bool = Field(
        False, description="Compare a full model whose tokenizer differs from the base's (its "
        "log-likelihoods are over other tokens: not comparable per item).")
    training_cost: float | None = Field(
        None, ge=0, description="What fine-tuning it cost (roi.currency), where no train_manifest.json "
        "beside it says how long it trained: the ROI and the quality-cost frontier need it.")

    @model_validator(mode="after")
    def _one_source(self) -> CandidateSpec:
        if self.adapter is not None and self.path is not None:
            raise ValueError("give one of `adapter` (LoRA on the base) or `path` (full model), not both")
        if self.adapter is None and self.path is None and self.served is None:
            raise ValueError("give one of `adapter` (LoRA on the base), `path` (full model), or `served` alone "
                             "(a model behind eval.endpoint with no local weights)")
        if self.tokenizer is not None and not self.hosted:
            raise ValueError("`tokenizer` is for a served model without local weights (`served` alone); a "
                             "local folder gives its own tokenizer")
        return self

    @property
    def hosted(self) -> bool:
        """Behind a server, with no local weights (`served` alone)."""
        return self.adapter is None and self.path is None

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if v == "base" or not v or any(c in v for c in "/\\:[]"):
            raise ValueError("must be non-empty, not 'base', and free of / \\ : [ ]")
        return v


class BaseSpec(ModelSpec):
    """Another base of the comparison (`bases:`), with its own fine-tunes: each is paired with its own
    base as the first base's candidates are with it, and every model is placed on one quality-cost
    frontier beside the others."""

    name: str = Field(description="Short name of the base in reports, e.g. small; also what `prompting` "
                      "arms name in `of:` to prompt it.")
    candidates: list[CandidateSpec] = Field(default_factory=list, description="Fine-tunes of this base "
                                            "(adapters trained on it, or full models from it).")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return CandidateSpec._name_ok(v)


class TaskVariantSpec(Spec):
    """Another lm-eval task over a suite task's documents (a chain-of-thought generation variant with
    an answer-extraction filter, say), scored by its own metric and filter, paired with the suite
    task document by document."""

    task: str = Field(description="lm-eval task name (from the suite's task folders or lm-eval).")
    metric: str = Field(description="Its per-item metric on the suite task's scale, e.g. exact_match.")
    filter: str = Field("none", description="lm-eval filter whose output the metric scores.")


class PromptingSpec(PromptFormatFields):
    """A way of prompting a model without (more) fine-tuning: zero- or k-shot, a role or system
    prompt, chain-of-thought. An arm of the comparison beside the fine-tunes, scored on the whole
    suite and paired with the base document by document; the prompt format keys it does not set
    are those of the model it prompts."""

    name: str = Field(description="Short name used in reports, e.g. base-3shot.")
    of: str = Field("base", description="The model prompted: base (default), another base's name (`bases`) "
                    "or a candidate's name.")
    num_fewshot: int | dict[str, int] | None = Field(
        None, description="Examples per prompt: a number for every task, or suite task -> number for some "
        "(the others keep their own, as in the suite).")
    variants: dict[str, TaskVariantSpec] = Field(
        default_factory=dict, description="Suite task -> another task over its documents that this arm "
        "is scored on instead (e.g. a chain-of-thought generation task with an answer filter).")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return CandidateSpec._name_ok(v)

    @field_validator("num_fewshot")
    @classmethod
    def _shots_ok(cls, v: int | dict[str, int] | None) -> int | dict[str, int] | None:
        if any(k < 0 for k in ([] if v is None else [v] if isinstance(v, int) else v.values())):
            raise ValueError("examples per prompt cannot be negative")
        return v

    def shots(self, task: str) -> int | None:
        """Examples per prompt on a suite task (None: the task's own)."""
        return self.num_fewshot.get(task) if isinstance(self.num_fewshot, dict) else self.num_fewshot
