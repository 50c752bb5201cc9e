"""The run store: per-sample records, content-addressed, plus a SQLite index.

Layout under the store root (default `.harness/`):

    runs/v<harness version>/<model fingerprint[:24]>/<task>.<task hash[:16]>.parquet  records
    runs/v<harness version>/<model fingerprint[:24]>/<task>.<task hash[:16]>.json     manifest
    judgments/v<harness version>/<judge fingerprint[:24]>/<task>.<pairing hash[:16]>.*  a judge's verdicts
    index.sqlite                                                          runs, comparisons, file hashes

A run is keyed by (model fingerprint, task, task hash, harness version). The manifest is written
last, each file atomically (temp file + rename): a run without a manifest does not exist, so a
crash loses at most the run in flight. The files are the truth; the SQLite index is rebuilt from
manifests where a crash left it a row short.

The manifest holds the sha256 of the records file, checked whenever the run is looked up or read:
a run whose records do not match (a flipped bit on disk, a file changed by hand) is corrupt. It is
set aside (`<file>.corrupt`, nothing deleted), counts as missing and so gets scored again.

Concurrency: a process scores a run only while it holds the run's lock (`<task>.<hash>.lock`,
`fcntl.flock`: released by the OS when the process dies, so a killed run never leaves a stale
lock), and checks the store again once it holds it; SQLite's own locking guards the index. Two
`harness compare` on one store split the work and never score a run twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

import harness
from harness.errors import HarnessError
from harness.records import ComparisonSummary
from harness.util.files import atomic_write, sha256_file
from harness.util.locks import file_lock
from harness.util.reads import file_states, note_read, unchanged

STORE_FORMAT = 2
# Manifests from format 2 on hold the records' sha256. Those of format 1 hold none, and their runs
# are read unchecked, as they always were: scoring a whole store again on upgrade (hours of GPU
# time for a large suite) would cost far more than the risk, which is no greater than before.
CHECKSUM_FORMAT = 2
METRIC_PREFIX = "metric."
METRIC_JSON_PREFIX = "metric_json."  # per-item inputs of a custom aggregation, as JSON
# Numbered migrations of the SQLite index; never edit one that has shipped, append a new one.
MIGRATIONS = [
    """
    CREATE TABLE runs (
        model_fp TEXT NOT NULL, task TEXT NOT NULL, task_hash TEXT NOT NULL,
        harness_version TEXT NOT NULL, path TEXT NOT NULL, label TEXT, n_items INTEGER,
        wall_s REAL, created_at TEXT,
        PRIMARY KEY (model_fp, task, task_hash, harness_version));
    CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, created_at TEXT NOT NULL,
        base_fp TEXT NOT NULL, summary TEXT NOT NULL);
    CREATE TABLE file_hashes (
        path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
    """,
    # 2: history. Per comparison its suite hash, and every model's score on every task (base rows
    # have no delta), so trends read from the index alone.
    """
    ALTER TABLE comparisons ADD COLUMN suite_hash TEXT;
    CREATE TABLE comparison_scores (
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id), model TEXT NOT NULL,
        fingerprint TEXT NOT NULL, task TEXT NOT NULL, role TEXT NOT NULL, metric TEXT NOT NULL,
        score REAL NOT NULL, delta REAL, ci_low REAL, ci_high REAL, n INTEGER NOT NULL);
    CREATE INDEX comparison_scores_by_task ON comparison_scores (task, model);
    """,
    # 3: a comparison's summary as records.ComparisonSummary: {"candidates": {...}, "gates": {...}}.
    # Before, candidates and the `gates` verdicts shared one object, and a candidate named `gates`
    # was overwritten by the verdicts when it was written: what was left is exactly this split.
    """
    UPDATE comparisons SET summary = json_object(
        'candidates', json_remove(summary, '$.gates'),
        'gates', json(coalesce(json_extract(summary, '$.gates'), '{}')));
    """,
    # 4: the kind of each stored result (RunKey.kind). A judge's verdicts were filed as runs of a task
    # named `<task>@judge`; those stay on disk where they are and are marked, not read again: the
    # judgments that replace them are keyed and stored as judgments (judge.JUDGE_FORMAT 3)
    """
    ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run';
    UPDATE runs SET kind = 'judgment' WHERE task LIKE '%@judge';
    """,
]


RUN, JUDGMENT = "run", "judgment"  # the kinds of stored records
KIND_FOLDERS = {RUN: "runs", JUDGMENT: "judgments"}


@dataclass(frozen=True)
class RunKey:
    """Identity of one stored result: a model's run of a task (kind `run`), or a judge's verdicts on a
    pairing of two models' answers to a task (kind `judgment`: the judge's fingerprint, the task
    judged, and a hash of the rubric, the labels and both sides' answers)."""

    model_fp: str
    task: str
    task_hash: str
    harness_version: str = harness.__version__
    kind: str = RUN

    @property
    def stem(self) -> str:
        return (f"{KIND_FOLDERS[self.kind]}/v{self.harness_version}/{self.model_fp[:24]}/"
                f"{self.task}.{self.task_hash[:16]}")


class RunManifest(BaseModel):
    """What one stored run is: written beside its records, last."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(STORE_FORMAT, description="Format version of this manifest.")
    kind: Literal["run", "judgment"] = Field(RUN, description="A model's run of a task, or a judge's verdicts "
                                             "on a pairing of answers to it (RunKey).")
    model_fp: str = Field(description="Fingerprint of the evaluated model (base or candidate), or of the judge.")
    task: str = Field(description="lm-eval task name (for a judgment: the task whose answers were judged).")
    task_hash: str = Field(description="Content hash of the task config and its documents (for a judgment: "
                           "of the rubric, the labels and both sides' answers).")
    harness_version: str
    lm_eval_version: str
    label: str = Field(description="Name the model had in the config that ran it (informational).")
    backend: str
    n_items: int = Field(description="Records (documents x filters).")
    n_requests: int = Field(description="lm-eval requests scored.")
    wall_s: float = Field(description="Seconds spent scoring this task, model already loaded.")
    created_at: str
    versions: dict[str, str] = Field(default_factory=dict, description="torch, transformers, peft, ... used.")
    device: str = Field("", description="Where it ran, e.g. 'cpu (x86_64, 2 threads)' or a GPU's name.")
    files: dict[str, str] = Field(default_factory=dict, description="sha256 of each file of the run by name "
                                  "(its records' Parquet), set by Store.write and checked on every read; "
                                  f"absent before format {CHECKSUM_FORMAT}.")
    peak_memory_mb: float | None = Field(None, description="Peak memory while it was scored (harness.util."
                                         "environment.PeakMemory: a GPU's allocation, or the process's resident "
                                         "set on a CPU); None when not measured.")
    tokens_fed: int | None = Field(None, description="Log-likelihood tokens run through the model (the hf "
                                   "backend's packed scoring: each unique token once); None where "
                                   "not counted.")
    tokens_requested: int | None = Field(None, description="Log-likelihood tokens of the requests' full "
                                         "sequences: what scoring each request whole would have fed.")
    scoring: str = Field("", description="How it was scored, in words (log-likelihood, letter choice, generated "
                         "text; the server's API): the report's methods. Empty before it was recorded.")
    input_tokens: int | None = Field(None, description="A served model: prompt tokens its answers counted (`usage`).")
    output_tokens: int | None = Field(None, description="A served model: generated tokens its answers counted.")
    aggregations: dict[str, str] = Field(default_factory=dict, description="Metric -> reference to lm-eval's "
                                         "aggregation of its stored per-item tuples (sources/aggregations.py), for "
                                         "metrics that are not per-item means; compare needs no task for them.")


class Store:
    """Read and write runs under `root`."""

    def __init__(self, root: str | Path, log: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = log or (lambda message: print(message, file=sys.stderr))
        # records files this process has checked, by (inode, size, mtime): a run looked up at plan
        # time and read at compare time is hashed once
        self._sound: dict[Path, tuple[int, int, int]] = {}
        self._migrate()

    # ------------------------------------------------------------------ index
    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.root / "index.sqlite", timeout=30)

    def _migrate(self) -> None:
        # processes opening one new store at once take turns (executescript commits as it goes, so
        # sqlite's own locking does not keep two from running the same step); each step and its
        # version number commit together, so a kill mid-step leaves the previous schema
        with file_lock(self.root / "index.sqlite.lock"), closing(self._connect()) as db:
            current = db.execute("PRAGMA user_version").fetchone()[0]
            if current > len(MIGRATIONS):
                raise HarnessError(f"{self.root}/index.sqlite: written by a newer harness (schema "
                                   f"{current} > {len(MIGRATIONS)}); upgrade harness or use another store")
            for n in range(current, len(MIGRATIONS)):
                db.executescript(f"BEGIN;\n{MIGRATIONS[n]}\nPRAGMA user_version = {n + 1};\nCOMMIT;")

    def file_hash(self, path: Path) -> str:
        """sha256 of a file, cached by (path, size, mtime) so multi-GB weights are read once."""
        st = path.stat()
        key = str(path.resolve())
        with closing(self._connect()) as db, db:
            row = db.execute("SELECT size, mtime_ns, sha256 FROM file_hashes WHERE path = ?",
                             (key,)).fetchone()
            if row and row[0] == st.st_size and row[1] == st.st_mtime_ns:
                return row[2]
            digest = sha256_file(path)
            db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)",
                       (key, st.st_size, st.st_mtime_ns, digest))
            return digest

    # ------------------------------------------------------------------ runs
    def _paths(self, key: RunKey) -> tuple[Path, Path]:
        return self.root / f"{key.stem}.parquet", self.root / f"{key.stem}.json"

    @contextmanager
    def claim(self, key: RunKey, *, wait: bool = True) -> Iterator[bool]:
        """Hold the run's lock while the block runs: True when held; False (only with `wait=False`)
        when another process holds it. Holding it, leftovers of a killed writer are removed."""
        records, _ = self._paths(key)
        with file_lock(records.with_suffix(".lock"), wait=wait) as held:
            if held:
                for partial in records.parent.glob(f".{records.stem}.*.tmp"):  # atomic_write's temp files
                    partial.unlink(missing_ok=True)
            yield held

    def reindex(self, keys: list[RunKey]) -> int:
        """Add index rows for stored runs that lack one (a kill between the manifest and the index
        row); returns how many were added."""
        with closing(self._connect()) as db:
            have = set(db.execute("SELECT model_fp, task, task_hash, harness_version FROM runs"))
        added = 0
        for key in keys:
            if (key.model_fp, key.task, key.task_hash, key.harness_version) not in have and self.has(key):
                self._index(key, self.read_manifest(key))
                added += 1
        return added

    def _index(self, key: RunKey, manifest: RunManifest) -> None:
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR REPLACE INTO runs (model_fp, task, task_hash, harness_version, path, label, "
                       "n_items, wall_s, created_at, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (key.model_fp, key.task, key.task_hash, key.harness_version, key.stem,
                        manifest.label, manifest.n_items, manifest.wall_s, manifest.created_at, key.kind))

    def has(self, key: RunKey) -> bool:
        """Whether the run is stored and sound; a corrupt one is set aside and counts as missing."""
        records, manifest = self._paths(key)
        if not (manifest.is_file() and records.is_file()):
            return False
        try:
            with records.open("rb") as f:
                st = os.fstat(f.fileno())
                if self._sound.get(records) != _signature(st):
                    self._check(key, f.read(), st)
        except FileNotFoundError:  # set aside or replaced meanwhile by another process
            return False
        except _Corrupt as e:
            self._set_aside(key, str(e))
            return False
        return True

    def _check(self, key: RunKey, data: bytes, st: os.stat_result) -> None:
        """Compare a run's records (`data`, from a file whose stat is `st`) with the checksum in its
        manifest and remember the file as sound; raises _Corrupt."""
        records, _ = self._paths(key)
        try:
            manifest = self.read_manifest(key)
        except HarnessError:
            raise _Corrupt("its manifest cannot be read") from None
        if manifest.version >= CHECKSUM_FORMAT:
            expected = manifest.files.get(records.name)
            if expected != hashlib.sha256(data).hexdigest():
                raise _Corrupt("its sha256 does not match its manifest's" if expected else
                               "its manifest holds no checksum for it")
        self._sound[records] = _signature(st)

    def _set_aside(self, key: RunKey, why: str) -> list[Path]:
        """Move a corrupt run's files to `<file>.corrupt` (the manifest first: from then on the run
        does not exist), drop its index row, and say so."""
        records, manifest = self._paths(key)
        moved = []
        for path in (manifest, records):
            aside = path.with_name(path.name + ".corrupt")
            n = 1
            while aside.exists():  # an earlier corrupt copy is kept too
                n += 1
                aside = path.with_name(f"{path.name}.corrupt{n}")
            try:
                os.replace(path, aside)
            except FileNotFoundError:  # another process set it aside first
                continue
            moved.append(aside)
        self._sound.pop(records, None)
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM runs WHERE model_fp = ? AND task = ? AND task_hash = ? AND harness_version = ?",
                       (key.model_fp, key.task, key.task_hash, key.harness_version))
        self._log(f"store: {records} is corrupt ({why}); moved aside to "
                  f"{', '.join(p.name for p in moved) or '(already moved)'}; delete those once looked at. "
                  "The run counts as missing and is scored again")
        return moved

    def read_manifest(self, key: RunKey) -> RunManifest:
        _, manifest = self._paths(key)
        note_read(manifest)  # the records' checksum is in it: it stands for both files
        try:
            return RunManifest.model_validate_json(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise HarnessError(f"{manifest}: unreadable run manifest ({type(e).__name__}); delete "
                               "it and its .parquet to re-run that evaluation") from None

    def read(self, key: RunKey) -> pd.DataFrame:
        records, manifest = self._paths(key)
        note_read(manifest)  # the records' checksum is in it: it stands for both files
        missing = HarnessError(f"no stored run for {key.task} of model {key.model_fp[:12]} in {self.root}")
        if not manifest.is_file():
            raise missing
        try:
            with records.open("rb") as f:
                data, st = f.read(), os.fstat(f.fileno())
                if self._sound.get(records) != _signature(st):
                    self._check(key, data, st)
        except FileNotFoundError:
            raise missing from None
        except _Corrupt as e:
            moved = self._set_aside(key, str(e))
            raise HarnessError(f"{records}: corrupt ({e}); moved aside to {', '.join(p.name for p in moved)}; "
                               "run the command again to score it again") from None
        try:
            return pd.read_parquet(io.BytesIO(data))
        except Exception as e:
            raise HarnessError(f"{records}: unreadable records ({type(e).__name__}: {e}); delete it "
                               "and its .json to re-run that evaluation") from None

    def write(self, key: RunKey, records: pd.DataFrame, manifest: RunManifest) -> RunManifest:
        """Store a run: records first, the manifest (with the records' checksum) last, then the
        index row. Returns the manifest as written."""
        records_path, manifest_path = self._paths(key)
        files: dict[str, str] = {}

        def write_records(p: Path) -> None:
            records.to_parquet(p, index=False)
            files[records_path.name] = sha256_file(p)

        atomic_write(records_path, write_records)
        manifest = manifest.model_copy(update={"version": STORE_FORMAT, "files": files})
        atomic_write(manifest_path, lambda p: p.write_text(manifest.model_dump_json(indent=1)))
        self._sound[records_path] = _signature(records_path.stat())
        self._index(key, manifest)
        return manifest

    def runs(self) -> list[dict]:
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY created_at")]

    def record_comparison(self, result) -> int:
        """Add a comparison (a comparison.ComparisonResult) to the history: models, fingerprints, suite
        hash, per-task scores and deltas, role deltas and gate verdicts, time. Returns its id."""
        summary = ComparisonSummary(candidates={cr.candidate: cr.role_deltas() for cr in result.results},
                                    gates={v.test_id: v.status for v in result.gates})
        fps = {m.label: m.fingerprint for m in [result.base, *result.candidates]}
        rows = []
        for i, cr in enumerate(result.results):
            for t in cr.tasks:
                if i == 0:
                    rows.append(("base", fps["base"], t.task, t.role, t.metric, t.base.estimate, None, None, None,
                                 t.n))
                rows.append((cr.candidate, fps[cr.candidate], t.task, t.role, t.metric, t.candidate.estimate,
                             t.delta.estimate, t.delta.low, t.delta.high, t.n))
        with closing(self._connect()) as db, db:
            cur = db.execute("INSERT INTO comparisons (name, created_at, base_fp, summary, suite_hash) "
                             "VALUES (?, ?, ?, ?, ?)", (result.name, result.created_at, fps["base"],
                                                        summary.model_dump_json(), result.suite_hash))
            cid = int(cur.lastrowid)
            db.executemany("INSERT INTO comparison_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(cid, *r) for r in rows])
            return cid

    def reusable_comparison(self, name: str, digest: str) -> dict | None:
        """The comparison `name` computed last, as JSON, when it was computed from inputs `digest` and
        every file it read is unchanged; None otherwise (nothing stored, other inputs, a file changed)."""
        try:
            memo = json.loads(self._memo_path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(memo, dict) or memo.get("digest") != digest or not unchanged(memo.get("reads", {})):
            return None
        return memo.get("result")

    def remember_comparison(self, name: str, digest: str, reads: set[str], result: dict) -> None:
        """Keep a comparison (JSON) with the digest of its inputs and the state of the files it read: the
        next run of `name` with the same inputs reuses it. One per name (the latest)."""
        memo = {"digest": digest, "reads": file_states(reads), "result": result}
        atomic_write(self._memo_path(name), lambda p: p.write_text(json.dumps(memo), encoding="utf-8"))

    def _memo_path(self, name: str) -> Path:
        slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
        return self.root / "comparisons" / f"{slug}.{hashlib.sha256(name.encode()).hexdigest()[:12]}.json"

    def history(self, name: str | None = None, suite_hash: str | None = None) -> list[dict]:
        """Every recorded comparison (oldest first), optionally of one config name and suite, with
        its per-task scores under `scores` and its role deltas and verdicts under `summary` (a
        records.ComparisonSummary)."""
        where, args = [], []
        for column, value in (("name", name), ("suite_hash", suite_hash)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            comps = [dict(r) for r in db.execute(
                "SELECT * FROM comparisons" + (" WHERE " + " AND ".join(where) if where else "")
                + " ORDER BY created_at, id", args)]
            for c in comps:
                c["summary"] = ComparisonSummary.model_validate_json(c["summary"])
                c["scores"] = [dict(r) for r in db.execute(
                    "SELECT model, fingerprint, task, role, metric, score, delta, ci_low, ci_high, n "
                    "FROM comparison_scores WHERE comparison_id = ?", (c["id"],))]
        return comps


class _Corrupt(Exception):
    """A stored run's files do not match its manifest (the message says how)."""


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns
