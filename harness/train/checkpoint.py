"""Resumable training checkpoints, in safetensors and JSON (nothing is pickled):

    OUT/checkpoints/step-000050/
        adapter_model.safetensors, adapter_config.json   the adapter at that step (a usable adapter)
        optimizer.safetensors                            AdamW's moments and step counts
        trainer_state.json                               step, loss curve, token counts, the spec,
                                                         the data order still to come, param groups

The data sampler's generator state sits in optimizer.safetensors as `sampler_rng`. The learning
rate is a function of the step, and dropout is reseeded from (seed, process, step) every step, so
no other random state is needed to continue exactly. A checkpoint is written into a temporary
folder and renamed into place: a kill leaves either the whole checkpoint or none. A resumed run
must train the adapter the run it continues was training: TrainSpec.adapter_identity decides.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.persisted import TRAINER_STATE, InputHashes, LoopProgress, TrainerState, read_record, write_record
from harness.train.loop import LoopState

STATE = TRAINER_STATE


def save_adapter(model, folder: Path) -> None:
    """peft's save_pretrained (safetensors), with adapter_config.json made byte-stable: peft keeps
    target_modules as a set, whose order changes with Python's hash seed from process to process,
    and the adapter's fingerprint covers this file."""
    model.save_pretrained(folder, safe_serialization=True)
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step-{step:06d}"


def save_checkpoint(folder: Path, model, optimizer: torch.optim.Optimizer, sampler: torch.Generator,
                    order: list[int], state: LoopState, spec: TrainSpec, hashes: InputHashes) -> None:
    """Write one checkpoint atomically (called on the main process only)."""
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_adapter(model, tmp)
    opt = optimizer.state_dict()
    tensors = {"sampler_rng": sampler.get_state()}
    for pid, entries in opt["state"].items():
        for name, value in entries.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{pid}.{name}"] = value.contiguous().cpu()
    save_file(tensors, tmp / "optimizer.safetensors")
    write_record(tmp / STATE, TrainerState(loop=LoopProgress(**asdict(state)), spec=spec, data_sha256=hashes,
                                           order=order, param_groups=opt["param_groups"]))
    for path in tmp.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def latest_checkpoint(out: Path) -> Path | None:
    """The complete checkpoint with the highest step under OUT/checkpoints, if any; the temporary
    folders of a checkpoint write that was killed are removed."""
    for partial in (out / "checkpoints").glob(".step-*.tmp-*"):
        shutil.rmtree(partial, ignore_errors=True)
    done = sorted(p for p in (out / "checkpoints").glob("step-*") if (p / STATE).is_file())
    return done[-1] if done else None


def load_checkpoint(folder: Path, model, optimizer: torch.optim.Optimizer, sampler: torch.Generator,
                    spec: TrainSpec, hashes: InputHashes) -> tuple[LoopState, list[int]]:
    """Restore adapter weights, optimizer and sampler from `folder`; returns (state, order)."""
    from peft import set_peft_model_state_dict

    meta = read_record(folder / STATE, TrainerState)
    ours = spec.adapter_identity(hashes.inputs(spec.base))
    theirs = meta.identity()
    changed = [f"{k} (its content)" if k in ("data", "replay") else k
               for k in sorted(ours) if ours[k] != theirs.get(k)]
    if changed:
        raise HarnessError(f"{folder}: written by a run with other settings ({', '.join(changed)}); resume "
                           "with the settings it was started with, or train into a new --out")
    set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    tensors = load_file(folder / "optimizer.safetensors")
    sampler.set_state(tensors.pop("sampler_rng"))
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": [dict(g) for g in meta.param_groups]})
    return LoopState(**meta.loop.model_dump()), list(meta.order)
