"""The LoRA trainer's settings (`harness train`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from harness.config.common import Spec


class TrainSpec(Spec):
    """The LoRA trainer's settings (`harness train`; its options are these fields)."""

    # What the adapter a run writes depends on, declared once: a resumed run, a sweep's reuse of an
    # adapter and the demo build's cache all compare `adapter_identity`. RUN_ONLY settings say where
    # things go or how the work is split (grad_accum: the same step up to float rounding); INPUTS
    # are files, told apart by content (or the base by its folder), not by their paths.
    RUN_ONLY: ClassVar[frozenset[str]] = frozenset(
        {"out", "checkpoint_every", "eval_every", "eval_config", "grad_accum", "strategy"})
    INPUTS: ClassVar[tuple[str, ...]] = ("base", "data", "replay")

    base: str = Field(description="Base model folder.")
    data: str = Field(description="JSONL: {prompt, completion} or a chat record {messages: [...]} per line.")
    out: str = Field(description="Folder to write the adapter and train_manifest.json to.")
    replay: str | None = Field(None, description="JSONL of general data mixed in against forgetting.")
    replay_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Share of each batch from replay.")
    steps: int = Field(800, ge=1, description="Optimizer steps.")
    batch_size: int = Field(32, ge=1, description="Records per optimizer step, over all processes: the same "
                            "training on 1 process or 8, with or without gradient accumulation.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per process per step (less memory, same step).")
    lr: float = Field(2e-3, gt=0, description="Peak learning rate (AdamW), constant after warmup.")
    warmup_steps: int = Field(20, ge=0, description="Steps of linear learning-rate warmup.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on LoRA's input.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      description="Modules that get LoRA weights.")
    layers: list[int] | None = Field(None, description="Only these decoder layers (0 = the first) get LoRA "
                                     "weights (peft's layers_to_transform); gradients then stop at the lowest "
                                     "of them, so upper layers alone train in about half a full pass's "
                                     "time. Default: every layer.")
    max_length: int = Field(256, ge=8, description="Longest example in tokens; longer is an error.")
    seed: int = Field(0, description="Seed of the adapter's initialisation, the batches and dropout.")
    chat_template: str | None = Field(None, description="Jinja chat template file for chat records, where "
                                      "the base's tokenizer has none.")
    precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto", description="Mixed precision: auto = bf16 where the hardware computes it faster (a GPU with "
        "bf16, a CPU with AMX), else none (float32), as the scoring's `dtype: auto`.")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="How several processes (accelerate launch, torchrun) share the work: ddp "
        "replicates the model, fsdp shards it (large bases; GPUs only).")
    checkpoint_every: int = Field(0, ge=0, description="Write a resumable checkpoint every N steps, to "
                                  "OUT/checkpoints/step-N (0: never).")
    eval_every: int = Field(0, ge=0, description="Evaluate a checkpoint every N steps on eval_config's suite.")
    eval_config: str | None = Field(None, description="Harness config (base, suite, store) for eval_every.")

    @model_validator(mode="after")
    def _replay_pair(self) -> TrainSpec:
        if self.replay_ratio > 0 and self.replay is None:
            raise ValueError("replay_ratio > 0 needs a replay file")
        if self.eval_every and not self.eval_config:
            raise ValueError("eval_every needs eval_config (a harness config naming the base and suite)")
        return self

    def adapter_identity(self, inputs: dict[str, str | None]) -> dict[str, Any]:
        """What makes the adapter of this run what it is: every setting but RUN_ONLY, and the INPUTS
        as `inputs` gives them (data files by content hash; the base by folder, or what the caller
        knows it by). Two runs with equal identities write the same adapter."""
        return {**self.model_dump(exclude=self.RUN_ONLY | set(self.INPUTS)),
                **{name: inputs[name] for name in self.INPUTS}}
