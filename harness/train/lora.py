"""The minimal LoRA trainer. Read it top to bottom.

    harness train --base .harness/demo/base --data train.jsonl --out adapters/v1 \\
        [--replay general.jsonl --replay-ratio 0.1] [--steps 800] [--seed 0] \\
        [--checkpoint-every 100] [--resume] [--eval-every 100 --eval-config harness.yaml]

    torchrun --nproc_per_node 8 $(which harness) train ...     # or: accelerate launch
    # the same run on 8 processes: each step is still --batch-size records

Data: JSONL of {"prompt", "completion"} records (the loss covers the completion and EOS) or chat
records {"messages": [...]} (rendered with the tokenizer's chat template; the loss covers the
assistant turns); see harness/train/data.py. A replay file is mixed in at `replay_ratio` of the
batch slots, its records usually with an empty prompt so the whole text is learned. Writes the
adapter (safetensors) and `train_manifest.json` (data hashes, steps, tokens, wall seconds, loss
curve, and the evaluation curve when --eval-every is set).
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

import harness
from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.persisted import InputHashes, TrainManifest, write_record
from harness.records import TRAIN_MANIFEST, CurveRecord, PromptFormatRecord
from harness.train import checkpoint as ckpt
from harness.train.data import encode_records, prompt_format, read_records
from harness.train.loop import (
    LoopSettings,
    LoopState,
    StepBatch,
    count_tokens,
    deterministic,
    make_optimizer,
    pad_batch,
    run_loop,
)
from harness.util.files import sha256_file

MANIFEST = TRAIN_MANIFEST


def _accelerator(spec: TrainSpec):
    """accelerate's view of the launch: one process, or the processes torchrun / accelerate launch
    started (gloo on CPUs, NCCL on GPUs)."""
    from accelerate import Accelerator
    from accelerate.utils import FullyShardedDataParallelPlugin

    gpu = torch.cuda.is_available()
    precision = resolve_precision(spec.precision, "cuda" if gpu else "cpu")[0]
    if spec.strategy == "fsdp" and not gpu:
        raise HarnessError("strategy fsdp: accelerate shards models over GPUs only; on CPUs use ddp")
    if spec.strategy == "fsdp" and spec.checkpoint_every:
        raise HarnessError("strategy fsdp: resumable checkpoints are written for ddp only (the optimizer "
                           "state is sharded under fsdp); drop --checkpoint-every or use ddp")
    plugin = FullyShardedDataParallelPlugin(use_orig_params=True) if spec.strategy == "fsdp" else None
    # accelerate keeps one mixed precision per process; a second run in the same process (a sweep, the
    # real world's candidates, an API user) in another precision starts its state afresh, keeping the
    # process group (PartialState) a launcher set up
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and str(AcceleratorState().mixed_precision) != precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    try:
        return Accelerator(cpu=not gpu, mixed_precision=precision, fsdp_plugin=plugin)
    except ValueError as e:
        raise HarnessError(f"precision {spec.precision}: {e}") from None


def resolve_precision(precision: str, device: str) -> tuple[str, str | None]:
    """The mixed precision to train in, and what to say about it: `auto` chooses as the scoring's
    `dtype: auto` does (bf16 where the hardware computes it faster); a pinned bf16 on a CPU that
    computes it slowly is kept, with the measured slowdown."""
    from harness.util.environment import auto_dtype, pinned_bf16_warning

    if precision == "auto":
        dtype, why = auto_dtype(device)
        chosen = "bf16" if dtype == "bfloat16" else "no"
        return chosen, f"precision {chosen} (auto: {why})"
    if precision == "bf16" and (warning := pinned_bf16_warning(device)):
        return precision, f"WARNING: {warning}"
    return precision, None


def _step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of a process's random draws (dropout) in one step: a resumed run draws the same."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{rank}:{step}".encode()).digest()[:7], "big")


def input_hashes(spec: TrainSpec) -> InputHashes:
    """The content of a run's data files."""
    return InputHashes(data=sha256_file(Path(spec.data)),
                       replay=sha256_file(Path(spec.replay)) if spec.replay else None)


def adapter_identity(spec: TrainSpec) -> dict:
    """What the adapter `spec` trains depends on (TrainSpec.adapter_identity): the base by its
    folder, the data files by content."""
    return spec.adapter_identity(input_hashes(spec).inputs(spec.base))


def train_lora(spec: TrainSpec, log: Callable[[str], None] | None = None, resume: bool = False) -> TrainManifest:
    """Fine-tune a LoRA adapter on `spec.base`; returns the manifest it writes (on every process)."""
    base, out = Path(spec.base), Path(spec.out)
    if not (base / "config.json").is_file():
        raise HarnessError(f"{base}: not a model folder (no config.json); pass --base a model folder")

    # 0. processes: each step's `batch_size` records are split over the processes, then into
    #    `grad_accum` micro-batches; only the main process logs and writes
    accelerator = _accelerator(spec)
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    log = log if (log and main) else (lambda m: None)
    said = resolve_precision(spec.precision, "cuda" if torch.cuda.is_available() else "cpu")[1]
    if said:
        log(said)
    if spec.batch_size % (world * spec.grad_accum):
        raise HarnessError(f"batch_size {spec.batch_size} does not split over {world} process(es) x grad_accum "
                           f"{spec.grad_accum}; use a multiple of {world * spec.grad_accum}")
    per_process = spec.batch_size // world
    micro_size = per_process // spec.grad_accum
    eval_loaded = None
    if spec.eval_every:
        from harness.train.curve import load_eval_config

        eval_loaded = load_eval_config(spec.eval_config, base)  # a bad config fails before training

    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if spec.chat_template:
        tok.chat_template = Path(spec.chat_template).read_text(encoding="utf-8")

    # 1. data: encode every record once; a malformed or too-long record is an error, not a silent cut
    records = read_records(Path(spec.data)), read_records(Path(spec.replay)) if spec.replay else []
    domain, replay = (encode_records(tok, rows, spec.max_length) for rows in records)
    hashes = input_hashes(spec)

    with deterministic(spec.seed):
        # 2. model: the base in float32 with LoRA on the target modules; only LoRA trains. Every
        #    process seeds the same, so every process starts from the same adapter
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, use_safetensors=True)
        lora = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                          target_modules=list(spec.target_modules), task_type="CAUSAL_LM",
                          layers_to_transform=spec.layers)
        model = get_peft_model(model, lora)
        settings = LoopSettings(steps=spec.steps, lr=spec.lr, warmup_steps=spec.warmup_steps,
                                weight_decay=spec.weight_decay)
        optimizer = make_optimizer(model, settings)

        # 3. batches: each slot is a replay record with probability replay_ratio, otherwise the
        #    next domain record of a shuffled pass; one seeded generator decides everything, the
        #    same on every process, and each process takes its slice of the global batch
        sampler = torch.Generator().manual_seed(spec.seed)
        order: list[int] = []

        # 4. resume: the latest complete checkpoint restores adapter, optimizer, sampler, progress
        state = LoopState()
        last = ckpt.latest_checkpoint(out) if resume else None
        if last is not None:
            state, order = ckpt.load_checkpoint(last, model, optimizer, sampler, spec, hashes)
            log(f"resuming from {last} (step {state.step}/{spec.steps})")
        elif resume:
            log(f"no checkpoint under {out / 'checkpoints'}: starting from step 0")
        model, optimizer = accelerator.prepare(model, optimizer)

        def next_batch(step: int) -> StepBatch:
            torch.manual_seed(_step_seed(spec.seed, rank, step))
            rows = []
            for _ in range(spec.batch_size):
                if replay and float(torch.rand(1, generator=sampler)) < spec.replay_ratio:
                    rows.append(replay[int(torch.randint(len(replay), (1,), generator=sampler))])
                    continue
                if not order:
                    order.extend(torch.randperm(len(domain), generator=sampler).tolist())
                rows.append(domain[order.pop()])
            mine = rows[rank * per_process:(rank + 1) * per_process]
            micro = [pad_batch(mine[i:i + micro_size], tok.pad_token_id) for i in range(0, per_process, micro_size)]
            micro = [{k: v.to(accelerator.device) for k, v in m.items()} for m in micro]
            return StepBatch(micro, *count_tokens(rows))

        # 5. checkpoints (resumable, and the adapters the evaluation scores) and evaluation
        def after_step(s: LoopState) -> None:
            due_ckpt = spec.checkpoint_every and (s.step % spec.checkpoint_every == 0 or s.step == spec.steps)
            due_eval = spec.eval_every and (s.step % spec.eval_every == 0 or s.step == spec.steps)
            if not (due_ckpt or due_eval):
                return
            folder = ckpt.checkpoint_dir(out, s.step)
            if main:
                ckpt.save_checkpoint(folder, accelerator.unwrap_model(model), optimizer, sampler, order, s,
                                     spec, hashes)
            if due_eval and main:
                from harness.train.curve import describe, evaluate_adapters, make_curve

                name = folder.name
                result = evaluate_adapters(eval_loaded, {name: folder})
                curve = make_curve("steps", name, result, {name: s.step})
                log(f"eval {name}: {describe(curve.points[0], curve.binary_roles)}")
            accelerator.wait_for_everyone()

        state = run_loop(model, optimizer, next_batch, settings, state, accelerator, after_step, log=log)

    # 6. write the adapter (safetensors), the evaluation curve, and the manifest
    manifest = TrainManifest(
        harness_version=harness.__version__, torch_version=torch.__version__, machine=platform.machine(),
        base=str(base), data_sha256=hashes.data, replay_sha256=hashes.replay, records=len(domain),
        replay_records=len(replay), spec=spec, processes=world, steps=spec.steps, tokens=state.tokens,
        loss_tokens=state.loss_tokens, wall_s=state.wall_s, loss_curve=state.loss_curve,
        prompt_format=PromptFormatRecord(**prompt_format(tok, records[0] + records[1], spec.chat_template)))
    if main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.save_adapter(accelerator.unwrap_model(model), out)
        if spec.eval_every:
            manifest = manifest.model_copy(update={
                "eval_curve": eval_curve(eval_loaded, out, spec.eval_every, spec.steps, log)})
        write_record(out / MANIFEST, manifest)
    accelerator.wait_for_everyone()
    return manifest


def random_lora(base: Path, out: Path, targets: list[str], sd: float, seed: int = 0) -> Path:
    """A LoRA adapter (r 8) on `targets` of `base` whose B matrices are random, N(0, sd): a nonzero
    update, the same for a given seed, trained on nothing (tests and `make bench`)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, sd)
    peft_model.save_pretrained(out)
    return out


def eval_curve(loaded, out: Path, every: int, steps: int, log: Callable[[str], None]) -> CurveRecord:
    """The checkpoints OUT/checkpoints/step-N (every `every` steps, and the last) in one comparison
    against the base: stored ones are not scored again, and the base and all adapters share one
    model load. The curve with its best trade-off step, as the manifest keeps it."""
    from harness.train.curve import evaluate_adapters, make_curve

    points = list(range(every, steps + 1, every))
    if steps not in points:
        points.append(steps)
    adapters = {f"step-{s:06d}": ckpt.checkpoint_dir(out, s) for s in points}
    missing = [str(p) for p in adapters.values() if not (p / "adapter_model.safetensors").is_file()]
    if missing:
        raise HarnessError(f"{out}: no checkpoint at {', '.join(missing)}; train with --checkpoint-every {every}")
    result = evaluate_adapters(loaded, adapters)
    curve = make_curve("steps", out.name, result, dict(zip(adapters, points, strict=True)))
    log(f"eval: best trade-off at step {curve.best} of {steps}")
    return curve
