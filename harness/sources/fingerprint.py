"""Model fingerprints: what the store keys records by, so it never serves one model's answers
for another's. A fingerprint covers the weights, the tokenizer, the config, the adapter's
weights and config, the dtype and the backend; a change to any of them is a new model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError
from harness.util.files import sha256_file

# Files of a model folder that decide its outputs. Weights are matched by suffix.
MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt",
               "chat_template.jinja")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")

FileHasher = Callable[[Path], str]


def _digest(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def resolve_model_dir(ref: str, revision: str | None) -> Path:
    """A local folder as is; a hub id through the local hub cache (downloading if allowed)."""
    if Path(ref).is_dir():
        return Path(ref)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref, revision=revision,
                                      local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1"))
    except Exception as e:
        raise HarnessError(f"model '{ref}': not a local folder, and the hub copy is unavailable "
                           f"({type(e).__name__}); give a local path or allow hub access") from None


def model_fingerprint(folder: Path, *, dtype: str, backend: str, hasher: FileHasher = sha256_file) -> str:
    """Fingerprint of a full model folder (base or fully fine-tuned candidate)."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.name in MODEL_FILES or path.name.endswith(WEIGHT_SUFFIXES)):
            files[path.name] = hasher(path)
    if not any(name.endswith(WEIGHT_SUFFIXES) for name in files):
        raise HarnessError(f"{folder}: no weights found (*.safetensors); is this a model folder?")
    return _digest({"kind": "model", "files": files, "dtype": dtype, "backend": backend})


def adapter_fingerprint(base_fp: str, folder: Path, hasher: FileHasher = sha256_file) -> str:
    """Fingerprint of a LoRA adapter applied to the base with fingerprint `base_fp`."""
    files = {name: hasher(folder / name) for name in ADAPTER_FILES if (folder / name).is_file()}
    if "adapter_config.json" not in files:
        raise HarnessError(f"{folder}: not a LoRA adapter folder (no adapter_config.json)")
    if "adapter_model.safetensors" not in files:
        raise HarnessError(f"{folder}: no adapter_model.safetensors; harness loads adapters from "
                           "safetensors only (convert a .bin adapter with peft's save_pretrained)")
    return _digest({"kind": "adapter", "base": base_fp, "files": files})
