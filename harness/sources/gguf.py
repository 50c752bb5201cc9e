"""GGUF checkpoints (llama.cpp's format) as model folders: dequantized to float32 safetensors with
their tokenizer and chat template, the form every harness backend and the trainer load.

transformers reads GGUF (`from_pretrained(folder, gguf_file=...)`, with the `gguf` package) but
refuses to save what it read ("quantized with gguf"): the weights are loaded into a plain model of
the same config and saved from there. The folder is rebuilt only when the GGUF file's content or
this converter changes (a stamp beside the weights says which file it came from).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError
from harness.util.files import atomic_write, sha256_file
from harness.util.locks import file_lock

CONVERTER_VERSION = 1
STAMP = "converted_from.json"


def convert_gguf(gguf_file: Path, out: Path, log: Callable[[str], None] = print) -> Path:
    """Write `gguf_file` as a model folder at `out` (or reuse the one written from the same file)."""
    gguf_file, out = Path(gguf_file), Path(out)
    if not gguf_file.is_file():
        raise HarnessError(f"{gguf_file}: no such GGUF file")
    with file_lock(out.parent / f".{out.name}.lock"):  # two processes converting at once take turns
        return _convert(gguf_file, out, log)


def _convert(gguf_file: Path, out: Path, log: Callable[[str], None]) -> Path:
    digest = sha256_file(gguf_file)
    stamp = {"gguf_sha256": digest, "converter": CONVERTER_VERSION}
    if (out / STAMP).is_file() and json.loads((out / STAMP).read_text()) == stamp \
            and (out / "model.safetensors").is_file():
        return out
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise HarnessError("reading GGUF needs the gguf package: pip install gguf") from None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log(f"gguf: converting {gguf_file.name} to a safetensors model folder ({out}) ...")
    folder, name = str(gguf_file.parent), gguf_file.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # a tied output layer is the embedding: absent from the state dict, filled in by tie_weights
    missing = [k for k in missing if not (plain.config.tie_word_embeddings and k.startswith("lm_head."))]
    if missing or unexpected:
        raise HarnessError(f"{gguf_file}: converted weights do not fit the model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    plain.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    atomic_write(out / STAMP, lambda p: p.write_text(json.dumps(stamp)))
    return out
