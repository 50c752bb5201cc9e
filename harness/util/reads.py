"""Which files a computation read, so that its result can be reused while none of them changed.

A reader of an input file calls `note_read(path)`; `recording_reads()` collects what was read inside
it. `unchanged(files)` says whether every recorded file still holds what it held (size and mtime
first, the sha256 where they differ). The comparison's reuse (pipeline.run_comparison) rests on it;
a test holds that every file the comparison opens is either noted or covered by a fingerprint.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from harness.util.files import sha256_file

_reads: ContextVar[set[str] | None] = ContextVar("harness_reads", default=None)


def note_read(path: str | Path) -> None:
    """Record that the running computation read `path` (nothing when none is recorded)."""
    seen = _reads.get()
    if seen is not None:
        seen.add(os.path.abspath(path))


@contextmanager
def recording_reads() -> Iterator[set[str]]:
    """The files noted as read inside the block (absolute paths); an enclosing recording gets them too."""
    seen: set[str] = set()
    token = _reads.set(seen)
    try:
        yield seen
    finally:
        _reads.reset(token)
        outer = _reads.get()
        if outer is not None:
            outer |= seen


def file_states(paths: set[str]) -> dict[str, list]:
    """Each file's [size, mtime_ns, sha256], as `unchanged` checks them later."""
    states = {}
    for p in sorted(paths):
        st = os.stat(p)
        states[p] = [st.st_size, st.st_mtime_ns, sha256_file(Path(p))]
    return states


def unchanged(states: dict[str, list]) -> bool:
    """Whether every file holds what `file_states` found (a missing file is a change)."""
    for p, (size, mtime_ns, digest) in states.items():
        try:
            st = os.stat(p)
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) == (size, mtime_ns):
            continue
        if st.st_size != size or sha256_file(Path(p)) != digest:
            return False
    return True
