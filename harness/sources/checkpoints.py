"""Checks of model and adapter folders before anything is loaded: no code or pickle runs without
the user's say-so, corrupt weights and mismatched adapters or tokenizers are named, not crashed on.

Only file headers are read: a safetensors file starts with its header's length (8 bytes, little
endian) and a JSON header of tensor names, dtypes, shapes and byte offsets.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt")


def safetensors_header(path: Path) -> dict:
    """The tensors of a safetensors file (name -> dtype, shape, offsets), checked against the file."""
    size = path.stat().st_size
    fix = "re-download or re-save it"
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise HarnessError(f"{path}: truncated safetensors file ({size} bytes, no header); {fix}")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise HarnessError(f"{path}: truncated or corrupt safetensors file (header of {n} bytes "
                               f"declared, file has {size}); {fix}")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HarnessError(f"{path}: corrupt safetensors file (header is not JSON); {fix}") from None
    header.pop("__metadata__", None)
    end = max((t["data_offsets"][1] for t in header.values()), default=0)
    if 8 + n + end > size:
        raise HarnessError(f"{path}: truncated safetensors file ({size} bytes, its header needs "
                           f"{8 + n + end}); {fix}")
    return header


def adapter_update_is_zero(adapter_dir: Path) -> bool:
    """Whether a LoRA adapter changes nothing: for every adapted module, its A or its B matrix is all
    zeros (peft initialises B to zeros, so an adapter saved before any training step is one), and it
    holds no other tensors (full replacement weights, `modules_to_save`). Read from the file's bytes
    (a float's zero is all-zero bytes, in every dtype), no framework loaded, and only until the first
    module whose A and B both hold a nonzero byte: a trained adapter costs two short reads."""
    path = adapter_dir / "adapter_model.safetensors"
    if not path.is_file():
        return False  # pickle weights (opted in): not read here
    header = safetensors_header(path)
    factors: dict[str, list[str]] = {}  # module -> its A and B tensors
    for name in header:
        part = next((p for p in (".lora_A.", ".lora_B.", "lora_embedding_A", "lora_embedding_B") if p in name), None)
        if part is None:
            return False  # a tensor that is not a low-rank factor: the adapter replaces weights
        factors.setdefault(name.split(part)[0], []).append(name)
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))

        def zero(name: str) -> bool:
            start, end = header[name]["data_offsets"]
            f.seek(8 + n + start)
            while start < end:
                chunk = f.read(min(1 << 20, end - start))
                if chunk.count(0) != len(chunk):
                    return False
                start += len(chunk)
            return True

        return bool(factors) and all(any(zero(t) for t in tensors) for tensors in factors.values())


def check_model_folder(folder: Path, *, where: str, trust_remote_code: bool,
                       allow_pickle: bool) -> dict[str, list[int]]:
    """Refuse a checkpoint's custom code and pickle-only weights unless opted in; check the
    safetensors headers and return every tensor's shape (none for pickle weights)."""
    if not trust_remote_code:
        for name in ("config.json", "tokenizer_config.json"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                auto_map = json.loads(path.read_text(encoding="utf-8")).get("auto_map")
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise HarnessError(f"{path}: not valid JSON ({e}); the checkpoint is damaged") from None
            if auto_map:
                code = sorted({str(v).split(".")[0] + ".py" for v in _flat(auto_map)})
                raise HarnessError(
                    f"{path}: auto_map points at Python code shipped with the checkpoint "
                    f"({', '.join(code)}), which loading would run; harness does not run it unless you "
                    f"set `trust_remote_code: true` on {where}")
    weights = sorted(p for p in folder.iterdir() if p.is_file())
    safe = [p for p in weights if p.suffix == ".safetensors"]
    pickled = [p for p in weights if p.suffix in PICKLE_SUFFIXES]
    if not safe and pickled and not allow_pickle:
        raise HarnessError(
            f"{folder}: weights only in pickle format ({', '.join(p.name for p in pickled)}); unpickling "
            "can run arbitrary code. Convert them to safetensors (model.save_pretrained(folder)) or, "
            f"if you trust the file, set `allow_pickle: true` on {where}")
    shapes: dict[str, list[int]] = {}
    for path in safe:
        shapes |= {name: t["shape"] for name, t in safetensors_header(path).items()}
    return shapes


def check_adapter(adapter_dir: Path, base_dir: Path, base: dict[str, list[int]], *, where: str,
                  fix: str = "the adapter was trained for a different base model; point `base.path` at that "
                             "model") -> None:
    """The adapter's LoRA matrices fit the base's layers (`base`: tensor shapes from
    `check_model_folder`); `fix` says what to do when they do not."""
    config_path = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HarnessError(f"{config_path}: unreadable adapter config ({e}); {where}") from None
    if config.get("peft_type", "LORA") != "LORA":
        raise HarnessError(f"{config_path}: peft_type {config.get('peft_type')!r}; harness evaluates LoRA "
                           f"adapters ({where})")
    adapter = safetensors_header(adapter_dir / "adapter_model.safetensors")
    if not base:
        return  # pickle weights (opted in): shapes are checked by peft when it loads
    for name, tensor in adapter.items():
        for part, axis in ((".lora_A.weight", 1), (".lora_B.weight", 0)):
            if not name.endswith(part):
                continue
            module = name.removeprefix("base_model.model.").removesuffix(part)
            shape = base.get(module + ".weight")
            if shape is None and module.split(".")[-1] == "lm_head":
                continue  # tied to the embeddings: no tensor of its own in the base's files
            if shape is None:
                raise HarnessError(f"{adapter_dir}: {where} adapts layer {module}, which the base "
                                   f"({base_dir}) does not have; {fix}")
            side = "input" if axis == 1 else "output"
            want = shape[axis] if len(shape) == 2 else None  # A: (r, in) vs (out, in); B: (out, r)
            if want is not None and tensor["shape"][axis] != want:
                raise HarnessError(
                    f"{adapter_dir}: {where} expects layer {module} with {side} size "
                    f"{tensor['shape'][axis]}, the base's has {want}; {fix}")


def tokenizers_differ(base_dir: Path, other_dir: Path, hasher: Callable[[Path], str]) -> list[str]:
    """The tokenizer files whose content differs between two model folders (`hasher`: the store's
    cached file hashes, which the fingerprints read anyway)."""
    differ = []
    for name in TOKENIZER_FILES:
        a, b = base_dir / name, other_dir / name
        if a.is_file() != b.is_file() or (a.is_file() and hasher(a) != hasher(b)):
            differ.append(name)
    return differ


def _flat(value) -> list:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    return [value] if value else []


def parameter_count(folder: Path | None) -> int | None:
    """Parameters in a folder's safetensors files (a model's, or an adapter's), from their headers;
    None without any (pickle weights, a hub id)."""
    if folder is None or not Path(folder).is_dir():
        return None
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    return sum(math.prod(t["shape"]) for f in files for t in safetensors_header(f).values())
