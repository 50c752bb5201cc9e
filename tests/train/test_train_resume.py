"""The trainer across processes and across kills: `torchrun --nproc_per_node 2` (gloo, CPU) trains
the adapter one process trains with the same global batch, and a run killed with SIGKILL resumes
to the adapter an uninterrupted run writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import adam_tolerance, forked_harness, logprob_tolerance
from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.pipeline import load, run_comparison
from harness.train.lora import MANIFEST, train_lora

pytestmark = pytest.mark.e2e  # torchrun with two processes, and training killed and resumed

# Where `harness train` dies (see conftest.Forked).
PLANT = r'''
if point == "step":  # right after the n-th optimizer step of this process
    import torch
    step = torch.optim.AdamW.step
    def stepped(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        hit()
        return out
    torch.optim.AdamW.step = stepped
elif point == "checkpoint":  # a checkpoint's files written into its temporary folder, not renamed
    from harness.train import checkpoint
    save_file = checkpoint.save_file
    def save_then_die(*args, **kwargs):
        save_file(*args, **kwargs)
        hit()
    checkpoint.save_file = save_then_die
'''


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HARNESS_PROGRESS": "0"}


def _args(world, out: Path, steps: int, batch: int, *extra: str) -> list[str]:
    return ["train", "--base", str(world.base), "--data", str(world.root / "data" / "domain_train.jsonl"),
            "--out", str(out), "--steps", str(steps), "--batch-size", str(batch), "--lr", "5e-3", *extra]


def _max_diff(a: Path, b: Path) -> tuple[float, float]:
    """(largest absolute difference between two adapters' tensors, largest absolute weight)."""
    ta, tb = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    assert ta.keys() == tb.keys()
    return (max(float((ta[k] - tb[k]).abs().max()) for k in ta), max(float(ta[k].abs().max()) for k in ta))


def _curve(out: Path) -> list[float]:
    return json.loads((out / MANIFEST).read_text())["loss_curve"]


def test_torchrun_two_processes_train_what_one_process_trains(tiny_world, tiny_config, tmp_path):
    """2 processes x 8 records per step (gloo) against 1 process x 16: the same adapter within float32's
    tolerance for 30 AdamW steps whose sums are grouped otherwise (conftest.adam_tolerance), the same
    first loss (same weights, so within a log-likelihood's tolerance and the manifest's 5 decimals), a
    falling curve in both, and the same scores on every task of the demo suite."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    train_lora(TrainSpec(base=str(tiny_world.base), data=str(tiny_world.root / "data" / "domain_train.jsonl"),
                         out=str(single), steps=30, batch_size=16, lr=5e-3))
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "harness.cli", *_args(tiny_world, ddp, 30, 16)],
                         capture_output=True, text=True, env=_env(), timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("train: wrote") == 1, run.stdout  # the main process speaks, and writes
    manifest = json.loads((ddp / MANIFEST).read_text())
    assert manifest["processes"] == 2
    diff, scale = _max_diff(single, ddp)
    tokens = 16 * TrainSpec.model_fields["max_length"].default  # a step's tokens, at most
    tolerance = adam_tolerance(tiny_world.base, steps=30, lr=5e-3, tokens_per_step=tokens)
    print(f"adapters differ by {diff:.2e} (tolerance {tolerance:.2e}, largest weight {scale:.2e})")
    assert diff <= tolerance and scale > 1e-2, (diff, tolerance, scale)
    a, b = _curve(single), _curve(ddp)
    assert len(a) == len(b) == 30 and a[-1] < a[0] and b[-1] < b[0]
    # the first loss, of the same weights: a mean over the batch's tokens (+1e-5: both rounded to 5 decimals)
    assert abs(a[0] - b[0]) <= logprob_tolerance(tiny_world.base, a[0], tokens=tokens) + 1e-5, (a[0], b[0])

    result = run_comparison(load(tiny_config({"single": single, "ddp": ddp})), log=lambda m: None)
    by = {cr.candidate: {t.task: t.candidate.estimate for t in cr.tasks} for cr in result.results}
    assert by["single"].keys() == by["ddp"].keys() and len(by["single"]) == 8
    # choice tasks: the same choices (a count of items); the bias tasks: means of the difference of two short
    # sentences' log-likelihoods (under 40 nats each), within float32's tolerance for 80 nats
    continuous = {"demo_pronoun_bias", "demo_note_bias"}
    assert all(by["single"][t] == by["ddp"][t] for t in by["single"].keys() - continuous), by
    bias_tolerance = logprob_tolerance(tiny_world.base, 80)
    assert all(abs(by["single"][t] - by["ddp"][t]) <= bias_tolerance for t in continuous), (by, bias_tolerance)


def test_gradient_accumulation_trains_the_same_step(tiny_world, tmp_path):
    """One process, 16 records per step as 1 micro-batch or as 4: the same adapter within float32's
    tolerance for 10 AdamW steps whose sums are grouped otherwise (conftest.adam_tolerance)."""
    data = str(tiny_world.root / "data" / "domain_train.jsonl")
    for name, accum in (("one", 1), ("four", 4)):
        train_lora(TrainSpec(base=str(tiny_world.base), data=data, out=str(tmp_path / name), steps=10,
                             batch_size=16, grad_accum=accum, lr=5e-3))
    diff, scale = _max_diff(tmp_path / "one", tmp_path / "four")
    tokens = 16 * TrainSpec.model_fields["max_length"].default  # a step's tokens, at most
    tolerance = adam_tolerance(tiny_world.base, steps=10, lr=5e-3, tokens_per_step=tokens)
    print(f"adapters differ by {diff:.2e} (tolerance {tolerance:.2e}, largest weight {scale:.2e})")
    assert diff <= tolerance and scale > 1e-2, (diff, tolerance, scale)
    with pytest.raises(HarnessError, match="batch_size 16 does not split over 1 process"):
        train_lora(TrainSpec(base=str(tiny_world.base), data=data, out=str(tmp_path / "x"), steps=1,
                             batch_size=16, grad_accum=3))


def test_killed_training_resumes_to_the_uninterrupted_adapter(tiny_world, tmp_path):
    """SIGKILL after step 13 (checkpoints every 5), resume, SIGKILL again while the step-15 checkpoint
    is being written, resume: the final adapter and loss curve equal the uninterrupted run's."""
    ref, out = tmp_path / "ref", tmp_path / "run"
    def harness(point: str, nth: int, *extra: str) -> subprocess.CompletedProcess:
        return forked_harness(*_args(tiny_world, out, 20, 8, "--checkpoint-every", "5", *extra),
                              plant=PLANT, fault=(point, nth))

    # the reference runs as the killed runs do, in a forked child: a child forked from this process may
    # run its kernels on another thread count than this process, and so group its float sums otherwise
    assert forked_harness(*_args(tiny_world, ref, 20, 8), plant=PLANT, fault=("none", 0)).returncode == 0

    first = harness("step", 13)
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000005", "step-000010"]
    assert not (out / MANIFEST).exists()

    second = harness("checkpoint", 1, "--resume")  # dies once step 15's optimizer state is written
    assert second.returncode == -signal.SIGKILL, second.stderr
    assert "resuming from" in second.stdout and "step 10/20" in second.stdout
    assert [p.name for p in (out / "checkpoints").glob(".step-000015.tmp-*")], "the partial checkpoint is there"
    assert not (out / "checkpoints" / "step-000015").exists()

    third = harness("none", 0, "--resume")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "step 10/20" in third.stdout  # the partial step-15 checkpoint was not used
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step-{s:06d}" for s in (5, 10, 15, 20)]
    diff, scale = _max_diff(ref, out)
    assert diff == 0.0 and scale > 1e-2, diff  # same kind of process, deterministic kernels: bit for bit
    assert _curve(out) == _curve(ref)


def test_resume_with_other_settings_is_refused(tiny_world, tmp_path):
    data = str(tiny_world.root / "data" / "domain_train.jsonl")
    spec = TrainSpec(base=str(tiny_world.base), data=data, out=str(tmp_path / "a"), steps=4, batch_size=4,
                     checkpoint_every=2)
    train_lora(spec)
    with pytest.raises(HarnessError, match=r"step-000004: written by a run with other settings \(lr\)"):
        train_lora(spec.model_copy(update={"lr": 1e-3}), resume=True)
