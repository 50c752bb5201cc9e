"""The optimisation loop shared by the LoRA trainer and the demo's pretraining.

Deterministic on CPU: deterministic kernels and every random draw from a seeded generator, so the
same inputs on the same machine and thread count give byte-identical weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

IGNORE = -100  # label value the loss skips (prompt and padding tokens)


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
class LoopResult:
    loss_curve: list[float]
    tokens: int  # tokens that were inputs (padding excluded)
    loss_tokens: int  # tokens the loss covered
    wall_s: float


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


def _lr_at(step: int, s: LoopSettings) -> float:
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    if s.schedule == "cosine":
        progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
        return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return s.lr


def run_loop(
    model: torch.nn.Module,
    next_batch: Callable[[int], dict[str, torch.Tensor]],
    settings: LoopSettings,
    log: Callable[[str], None] | None = None,
) -> LoopResult:
    """Train `model` for `settings.steps` steps on the batches `next_batch(step)` returns."""
    params = [p for p in model.parameters() if p.requires_grad]
    # 1. AdamW over the trainable parameters only (all of them when pretraining, LoRA's when tuning)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, betas=settings.betas,
                                  weight_decay=settings.weight_decay)
    curve: list[float] = []
    tokens = loss_tokens = 0
    start = time.perf_counter()
    model.train()
    for step in range(settings.steps):
        # 2. learning rate for this step: linear warmup, then constant or cosine
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, settings)
        batch = next_batch(step)
        tokens += int(batch["attention_mask"].sum())
        loss_tokens += int((batch["labels"][:, 1:] != IGNORE).sum())
        # 3. forward, backward, clip, step
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        curve.append(round(float(loss.detach()), 5))
        if log and (step % 50 == 0 or step == settings.steps - 1):
            log(f"step {step + 1}/{settings.steps} loss {curve[-1]:.4f}")
    model.eval()
    return LoopResult(curve, tokens, loss_tokens, round(time.perf_counter() - start, 3))
