"""Files the harness writes and reads: atomic writes, content hashes, line-numbered JSONL."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import HarnessError

DATA_HINT = "check the task's `data.path` (suite) or `task_data` (config)"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:  # on disk before it gets its name: a power cut leaves old or new
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def require_file(path: Path, what: str, hint: str = DATA_HINT) -> Path:
    if not path.is_file():
        raise HarnessError(f"{path}: {what} not found; {hint}")
    return path


def read_jsonl(path: Path, what: str = "data file", hint: str = DATA_HINT) -> Iterator[tuple[str, dict]]:
    """(where, object) per non-blank line, where = 'file:line'; a bad line is an error naming it."""
    with require_file(path, what, hint).open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise HarnessError(f"{path}:{n}: not valid JSON ({e.msg}); fix or remove the line") from None
            if not isinstance(row, dict):
                raise HarnessError(f"{path}:{n}: expected a JSON object per line, got {type(row).__name__}")
            yield f"{path}:{n}", row
