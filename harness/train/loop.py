"""The optimisation loop shared by the LoRA trainer and the demo's pretraining.

Deterministic on CPU: deterministic kernels and every random draw from a seeded generator, so the
same inputs on the same machine and thread count give byte-identical weights.

One step is one global batch. Each process gets its share of it, in micro-batches (gradient
accumulation); every micro-batch's loss is its summed token loss over the token count of the whole
global batch, so the gradient is the global batch's mean whatever the split: 1 process or 8,
1 micro-batch or 4, the same step up to float rounding.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch

from harness.train.data import IGNORE

__all__ = ["IGNORE", "LoopSettings", "LoopState", "StepBatch", "deterministic", "make_optimizer",
           "pad_batch", "run_loop"]


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    lr: float
    warmup_steps: int
    weight_decay: float
    # "constant" after warmup, or "cosine" down to 10% of lr
    schedule: str = "constant"
    betas: tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float = 1.0


@dataclass(frozen=True)
class StepBatch:
    """One step's data as this process sees it."""

    micro: list[dict[str, torch.Tensor]]  # this process's share of the global batch
    tokens: int  # input tokens of the whole global batch (padding excluded)
    loss_tokens: int  # tokens the loss covers in the whole global batch


@dataclass
class LoopState:
    """Progress so far: what a checkpoint saves and a resumed run starts from."""

    step: int = 0  # steps done
    loss_curve: list[float] = field(default_factory=list)
    tokens: int = 0
    loss_tokens: int = 0
    wall_s: float = 0.0


@contextmanager
def deterministic(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seed torch and pin kernels (and `threads`, when given) for the duration; restore afterwards.
    By default torch's thread count stays as the environment set it (OMP_NUM_THREADS, else the
    cores): several training processes on one machine then do not fight over the cores."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads or old_threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def pad_batch(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad (input_ids, labels) rows into tensors; padding is masked from attention and loss."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, labs) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(labs)] = torch.tensor(labs)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def count_tokens(rows: list[tuple[list[int], list[int]]]) -> tuple[int, int]:
    """(input tokens, loss tokens) of rows; the loss covers labels after the first position."""
    return sum(len(ids) for ids, _ in rows), sum(sum(1 for x in labs[1:] if x != IGNORE) for _, labs in rows)


def lr_at(step: int, s: LoopSettings) -> float:
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    if s.schedule == "cosine":
        progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
        return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return s.lr


def make_optimizer(model: torch.nn.Module, settings: LoopSettings) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters only (all of them when pretraining, LoRA's when tuning)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)


def _keeps_logits(model: torch.nn.Module) -> bool:
    """Whether the model computes logits at chosen positions only (transformers' `logits_to_keep`)."""
    inner = getattr(model, "module", model)  # under DDP
    inner = inner.get_base_model() if hasattr(inner, "get_base_model") else inner  # under peft
    return _forward_keeps_logits(type(inner))


@functools.cache
def _forward_keeps_logits(cls: type) -> bool:
    """The signature asked once per model class, not once per micro-batch."""
    import inspect

    return "logits_to_keep" in inspect.signature(cls.forward).parameters


def micro_loss(model: torch.nn.Module, micro: dict[str, torch.Tensor], loss_tokens: int) -> torch.Tensor:
    """A micro-batch's summed token loss over `loss_tokens` (the global batch's). Where the loss covers
    some positions only (a completion after its prompt, a chat's assistant turns), the logits are
    computed at those positions alone: the output layer over the vocabulary is a large share of a
    small model's work (a fifth of SmolLM2-135M's), and a judge learns one label after a long prompt.
    The same loss, summed in another order; a batch whose loss covers (nearly) every position, as
    pretraining's does, goes through the model's own loss as it is."""
    labels = micro["labels"]
    targets = labels[:, 1:]
    keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
    if keep.numel() >= targets.shape[1] or not _keeps_logits(model):
        return model(**micro, num_items_in_batch=loss_tokens).loss
    out = model(input_ids=micro["input_ids"], attention_mask=micro["attention_mask"], logits_to_keep=keep)
    logits = out.logits.float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[:, keep].reshape(-1),
                                             ignore_index=IGNORE, reduction="sum") / loss_tokens


def run_loop(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    next_batch: Callable[[int], StepBatch],
    settings: LoopSettings,
    state: LoopState | None = None,
    accelerator=None,
    after_step: Callable[[LoopState], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> LoopState:
    """Train from `state.step` to `settings.steps` on the batches `next_batch(step)` returns.

    With an `accelerate.Accelerator` (the LoRA trainer), gradients are synchronised across
    processes once per step; `after_step` runs after each step (checkpoints, evaluation)."""
    state = state or LoopState()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    world = accelerator.num_processes if accelerator is not None else 1
    model.train()
    start = time.perf_counter() - state.wall_s
    for step in range(state.step, settings.steps):
        # 1. learning rate for this step: linear warmup, then constant or cosine (a function of the
        #    step alone, so a resumed run needs no scheduler state)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, settings)
        batch = next_batch(step)
        # 2. forward and backward per micro-batch; each loss is a share of the global mean (DDP
        #    averages gradients over processes, hence x world); gradients sync on the last one
        step_loss = torch.zeros(())
        for i, micro in enumerate(batch.micro):
            last = i == len(batch.micro) - 1
            sync = nullcontext() if last or accelerator is None else accelerator.no_sync(model)
            with sync:
                loss = micro_loss(model, micro, batch.loss_tokens) * world
                if accelerator is not None:
                    accelerator.backward(loss)
                else:
                    loss.backward()
            step_loss += loss.detach().float().cpu() / world
        if accelerator is not None and world > 1:
            step_loss = accelerator.reduce(step_loss.to(accelerator.device), reduction="sum").cpu()
        # 3. clip, step
        if accelerator is not None:
            accelerator.clip_grad_norm_(params, settings.max_grad_norm)
        else:
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.step = step + 1
        state.loss_curve.append(round(float(step_loss), 5))
        state.tokens += batch.tokens
        state.loss_tokens += batch.loss_tokens
        state.wall_s = round(time.perf_counter() - start, 3)
        if log and (step % 50 == 0 or step == settings.steps - 1):
            log(f"step {step + 1}/{settings.steps} loss {state.loss_curve[-1]:.4f}")
        if after_step is not None:
            paused = time.perf_counter()
            after_step(state)
            model.train()
            start += time.perf_counter() - paused  # checkpoints and evaluation are not training time
    model.eval()
    state.wall_s = round(time.perf_counter() - start, 3)
    return state
