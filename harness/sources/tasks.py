"""Suite tasks as lm-eval Task objects, each with a content hash.

Tasks come from the suite's own folders of lm-eval YAML first (relative `data_files` there are
relative to the YAML file, so a suite can be run from any directory), then from lm-eval's
registry. Loading tasks needs no model.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.config import DataSpec, SuiteSpec, TaskSpec, TaskVariantSpec
from harness.errors import ConfigError, HarnessError
from harness.sources import lm_eval_patches
from harness.sources.files import local_task_config
from harness.util.lazy import Lazy
from harness.util.yaml import load_yaml_file

log = logging.getLogger(__name__)
FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed
DEFAULT_CACHE = Path.home() / ".cache" / "harness" / "datasets"  # converted local data, when no store


@dataclass(frozen=True)
class LoadedTask:
    """One leaf lm-eval task of the suite, with its spec and content hash."""

    name: str
    spec: TaskSpec
    task: Any  # lm_eval.api.task.Task
    task_hash: str
    n_docs: int
    indices: tuple[int, ...] | None = None  # the documents scored, when not all (subset, limit)
    leaf: str = ""  # the suite's leaf task it is paired with (its own name, unless a variant or k-shot)
    variant: TaskVariantSpec | None = None  # what was scored instead of the suite's task (`spec`), if anything

    def __post_init__(self) -> None:
        if not self.leaf:
            object.__setattr__(self, "leaf", self.name)


def _canonical(value: Any) -> Any:
    """A JSON-able, address-free form of a task config: functions become hashes of their source."""
    if callable(value):
        try:
            src = inspect.getsource(value)
        except (OSError, TypeError):
            src = getattr(value, "__qualname__", repr(type(value)))
        return "fn:" + hashlib.sha256(src.encode()).hexdigest()
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def select(n: int, spec: TaskSpec, name: str, limit: int | None) -> tuple[int, ...] | None:
    """The documents to score: a seeded subset (sorted), cut to `limit`; None means all."""
    if spec.subset is None and (limit is None or limit >= n):
        return None
    chosen = sorted(random.Random(f"{spec.subset_seed}:{name}").sample(range(n), min(spec.subset, n))) \
        if spec.subset is not None else list(range(n))
    return tuple(chosen[:limit] if limit is not None else chosen)


def task_hash(task: Any, indices: tuple[int, ...] | None) -> str:
    """Hash of what decides a task's records: its config, every evaluated doc, lm-eval's version."""
    import lm_eval

    h = hashlib.sha256()
    config = {k: v for k, v in vars(task.config).items() if not k.startswith("_")}
    # where the data files lie does not matter, only what they hold (hashed below): a moved
    # checkout or a second clone reuses the same stored runs
    kwargs = dict(config.get("dataset_kwargs") or {})
    if kwargs.pop("data_files", None) is not None:
        config["dataset_kwargs"] = kwargs
    h.update(json.dumps({"config": _canonical(config), "indices": indices,
                         "lm_eval": lm_eval.__version__}, sort_keys=True).encode())
    docs = task.eval_docs
    for i in indices if indices is not None else range(len(docs)):
        h.update(json.dumps(docs[i], sort_keys=True, default=str, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def load_task_yaml(path: Path, resolve_func: bool = True, recursive: bool = True, strict: bool = True,
                   _seen: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """An lm-eval task YAML as lm-eval's own `load_yaml` reads it (`!function` tags, `include:`
    merged under the file's own keys), through the harness's loader: in the suite's task folders
    (`strict`) a key given twice is an error; lm-eval's registry files keep the last, as lm-eval does
    (a dozen of them give a key twice, and the user cannot fix them)."""
    path = Path(path).expanduser().resolve()
    if path in _seen:
        raise HarnessError(f"{path}: include cycle")
    here = path.parent

    def function(spec: str):
        if not resolve_func:
            return str(here / spec)
        from lm_eval.tasks._yaml_loader import _import_func_in_yml

        return _import_func_in_yml(spec, here)

    cfg = load_yaml_file(path, function, allow_duplicate_keys=not strict)
    if not isinstance(cfg, dict):
        raise HarnessError(f"{path}: expected a mapping of task config keys, got {type(cfg).__name__}")
    if not recursive or "include" not in cfg:
        return cfg
    includes = cfg.pop("include")
    merged: dict[str, Any] = {}
    for inc in includes if isinstance(includes, list) else [includes]:
        sub = load_task_yaml(here / inc, resolve_func, True, strict, _seen | {path})
        sub.pop("task_list", None)  # an included file's task_list defines tasks for that file only
        merged.update(sub)
    return merged | cfg


def local_task_files(task_dirs: list[str]) -> tuple[dict[str, Path], list[str]]:
    """Task name -> its YAML file in the suite's folders (the first found), read without lm-eval;
    and the problems of files that could not be read."""
    local: dict[str, Path] = {}
    unreadable: list[str] = []
    for folder in task_dirs:
        for path in sorted(Path(folder).rglob("*.yaml")):
            try:
                cfg = load_task_yaml(path, resolve_func=False, recursive=False)
            except ConfigError as e:  # a key given twice, a syntax error: named if a task is missing
                unreadable += e.problems
                continue
            except Exception as e:  # a broken YAML is reported when a suite asks for it
                log.debug("skipping %s: %s", path, e)
                continue
            name = cfg.get("task")
            if isinstance(name, str):
                local.setdefault(name, path)
    return local, unreadable


class _Catalog:
    """Finds task YAML by task name: the suite's folders first, lm-eval's registry after."""

    def __init__(self, task_dirs: list[str]):
        from harness.sources import metrics

        lm_eval_patches.cache_compiled_templates()
        metrics.register()  # rouge1, rouge2, rougeL beside lm-eval's own metrics

        self.task_dirs = task_dirs
        # problems of local task YAML, named when a task is not found
        self._local, self.unreadable = local_task_files(task_dirs)

    @cached_property
    def manager(self):
        from lm_eval.tasks import TaskManager

        return TaskManager()  # indexes lm-eval's ~15k task configs: only built when needed

    @cached_property
    def registry(self) -> dict[str, tuple[str, str | None, list[str]]]:
        """lm-eval's task index (name -> kind, YAML path, tag members), cached on disk per lm-eval
        install: building it parses ~15k YAML files (about 20 s), for every run that names a
        registry task. The key covers every YAML file's path, size and mtime."""
        import lm_eval

        root = Path(lm_eval.__file__).parent / "tasks"
        stamp = hashlib.sha256(lm_eval.__version__.encode())
        for folder, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            for f in sorted(files):
                if f.endswith((".yaml", ".yml")):
                    st = os.stat(os.path.join(folder, f))
                    stamp.update(f"{folder}/{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        path = DEFAULT_CACHE.parent / f"lm_eval_index.{stamp.hexdigest()[:24]}.json"
        try:
            return {k: (v[0], v[1], v[2]) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
        except (OSError, ValueError, IndexError, AttributeError):
            pass  # absent or unreadable: rebuild
        index = {name: (e.kind.name, str(e.yaml_path) if e.yaml_path else None, sorted(e.tags))
                 for name, e in self.manager.task_index.items()}
        try:
            from harness.util.files import atomic_write

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda p: p.write_text(json.dumps(index), encoding="utf-8"))
        except OSError as e:  # a read-only home only costs the next run the rebuild
            log.warning("could not cache lm-eval's task index at %s: %s", path, e)
        return index

    def _leaves(self, name: str) -> list[tuple[str, Path]]:
        """The leaf tasks of a name, each with its YAML: a group or tag expands, recursively."""
        if name in self._local:
            return [(name, self._local[name])]
        if name not in self.registry:
            raise KeyError(name)
        kind, yaml_path, tags = self.registry[name]
        if kind == "TAG":
            return [leaf for member in tags for leaf in self._leaves(member)]
        if kind == "GROUP":
            members = load_task_yaml(Path(yaml_path or ""), resolve_func=False, strict=False).get("task", [])
            names = [m if isinstance(m, str) else m.get("task") for m in members]
            return [leaf for member in names if isinstance(member, str) for leaf in self._leaves(member)]
        if yaml_path is None:
            raise HarnessError(f"task {name} is defined in Python; it cannot read local data files")
        return [(name, Path(yaml_path))]

    def load(self, name: str, data: DataSpec | None = None, cache: Path | None = None,
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Leaf tasks (name -> Task) for a suite entry; a group expands to its tasks. With `data`,
        every leaf reads its documents from local files instead of the hub."""
        from lm_eval.tasks import TaskManager

        if data is None and not overrides and name not in self._local:
            if name not in self.registry:  # the index cached on disk: no 20 s TaskManager for a typo
                raise KeyError(name)
            return self.manager.load([name])["tasks"]
        tasks: dict[str, Any] = {}
        for leaf, path in self._leaves(name):
            cfg = load_task_yaml(path, resolve_func=True, strict=leaf in self._local)
            cfg = _resolve_data_files(cfg, path.parent) if leaf in self._local else cfg
            cfg = _merge(cfg, overrides or {})
            if data is not None:
                cfg = local_task_config(cfg, leaf, data, cache or DEFAULT_CACHE)
            elif cfg.get("dataset_path") == "json" and not (cfg.get("dataset_kwargs") or {}).get("data_files"):
                raise HarnessError(f"task {leaf} reads local files: give it `data: {{format, path}}` in the "
                                   "suite, or `task_data:` in the config")
            try:
                tasks |= TaskManager(include_defaults=False).load([cfg])["tasks"]
            except Exception:
                _diagnose_data_files(cfg)  # a precise message where the cause is a data file
                raise
        return tasks


def _diagnose_data_files(cfg: dict) -> None:
    """Name the data file (and line) that made lm-eval fail: missing, empty, not JSON lines.
    Run only after a failure, so large files cost nothing when they are fine."""
    from harness.util.files import read_jsonl

    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if cfg.get("dataset_path") != "json" or not files:
        return
    if isinstance(files, dict):
        paths = [p for v in files.values() for p in (v if isinstance(v, list) else [v])]
    else:
        paths = files if isinstance(files, list) else [files]
    hint = "check the task's `data_files`"
    for path in (Path(p) for p in paths if "://" not in p):
        if path.is_file():
            with path.open("rb") as f:
                if f.read(1) == b"[":  # one JSON array, not JSON lines
                    continue
        if sum(1 for _ in read_jsonl(path, hint=hint)) == 0:  # every line read: a bad one is named
            raise HarnessError(f"{path}: no records (empty, or blank lines only); task {cfg.get('task')} needs at "
                               "least one document per split")


def _merge(cfg: dict, overrides: dict) -> dict:
    """Override task config keys; nested mappings (generation_kwargs) merge key by key."""
    out = dict(cfg)
    for k, v in overrides.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _resolve_data_files(cfg: dict, here: Path) -> dict:
    kwargs = dict(cfg.get("dataset_kwargs") or {})
    files = kwargs.get("data_files")
    if files is None:
        return cfg

    def fix(p: str) -> str:
        return p if "://" in p or Path(p).is_absolute() else str((here / p).resolve())

    if isinstance(files, str):
        files = fix(files)
    elif isinstance(files, list):
        files = [fix(p) for p in files]
    elif isinstance(files, dict):
        files = {k: ([fix(p) for p in v] if isinstance(v, list) else fix(v)) for k, v in files.items()}
    kwargs["data_files"] = files
    return {**cfg, "dataset_kwargs": kwargs}


def _prepare(task: Any, num_fewshot: int | None) -> Any:
    """What lm-eval's simple_evaluate does to a task before evaluating it: the number of shots
    (the task's own default, else 0) and the few-shot sampler's seed."""
    if num_fewshot is not None:
        task.set_config(key="num_fewshot", value=num_fewshot)
    elif task.get_config("num_fewshot") is None:
        task.set_config(key="num_fewshot", value=0)
    task.set_fewshot_seed(seed=FEWSHOT_SEED)
    return task


def _build(catalog: _Catalog, spec: TaskSpec, i: int, suite_path: str, limit: int | None,
           num_fewshot: int | None = None, cache: Path | None = None, leaf: str = "") -> list[LoadedTask]:
    try:
        tasks = catalog.load(spec.task, spec.data, cache, spec.overrides)
    except KeyError:
        raise ConfigError([f"{suite_path}: tasks[{i}].task: unknown task '{spec.task}' (not in "
                           f"{', '.join(catalog.task_dirs)} nor in lm-eval's registry)", *catalog.unreadable]) from None
    except ConfigError:
        raise
    except HarnessError as e:
        raise HarnessError(f"{suite_path}: tasks[{i}] ({spec.task}): {e}") from None
    except IndexError as e:
        if "size 0" not in str(e):  # lm-eval looks at document 0 while it builds the task
            raise HarnessError(f"{suite_path}: tasks[{i}] ({spec.task}): lm-eval could not build "
                               f"the task: {type(e).__name__}: {e}") from e
        raise HarnessError(f"{suite_path}: tasks[{i}] ({spec.task}): the task has no items (its split is "
                           "empty once loaded and filtered by process_docs); check its data and filters") from None
    except Exception as e:
        raise HarnessError(f"{suite_path}: tasks[{i}] ({spec.task}): lm-eval could not build "
                           f"the task: {type(e).__name__}: {e}") from e
    loaded = []
    for name, task in sorted(tasks.items()):
        n = len(task.eval_docs)
        if n == 0:
            raise HarnessError(f"{suite_path}: tasks[{i}] ({name}): the task has no items")
        if num_fewshot and not (task.has_training_docs() or task.has_validation_docs()
                                or task.config.fewshot_split):
            raise HarnessError(f"{suite_path}: tasks[{i}] ({name}): a {num_fewshot}-shot baseline needs "
                               "few-shot examples; give the task a `fewshot_split` (or a train split)")
        _prepare(task, num_fewshot)
        label = name if num_fewshot is None else f"{name}@{num_fewshot}shot"
        # a variant is drawn from the suite task's documents (the same subset), named after both
        indices = select(n, spec, leaf or name, limit)
        if leaf:
            label = f"{leaf}@{label}"
        loaded.append(LoadedTask(name=label, spec=spec, task=task, task_hash=task_hash(task, indices),
                                 n_docs=n if indices is None else len(indices), indices=indices, leaf=leaf or name))
    return loaded


def load_tasks(suite: SuiteSpec, suite_path: str, limit: int | None = None, cache: Path | None = None,
               num_fewshot: int | dict[str, int] | None = None,
               variants: dict[str, TaskVariantSpec] | None = None, where: str = "",
               remember: Remember | None = None) -> list[LoadedTask]:
    """Build every task of the suite and hash it. Unknown tasks are all reported at once.

    A prompting arm's tasks: with `num_fewshot` examples (on every task, or on those it maps), and
    a suite task named in `variants` replaced by its variant (another task over the same documents,
    its own metric and filter); `where` names the arm in errors.

    With `remember`, tasks built once are remembered by their recipe (Remember): the next call
    with the same recipe returns them without lm-eval, each lm-eval task built only if asked for."""
    def build() -> list[LoadedTask]:
        return load_tasks(suite, suite_path, limit, cache, num_fewshot, variants, where)

    if remember is not None:
        recipe = {"what": "suite", "limit": limit, "num_fewshot": num_fewshot,
                  "variants": {k: v.model_dump(mode="json") for k, v in (variants or {}).items()}}
        return remember.tasks(suite, list(enumerate(suite.tasks)), recipe, build, variants)
    catalog = _Catalog(suite.task_dirs)
    variants = variants or {}
    loaded: list[LoadedTask] = []
    names = {t.task for t in suite.tasks}
    shots = num_fewshot if isinstance(num_fewshot, dict) else {}
    problems = [f"{where}{key}.{name}: not a task of suite {suite.name}" for key, named in
                (("variants", variants), ("num_fewshot", shots)) for name in named if name not in names]
    for i, spec in enumerate(suite.tasks):
        k = shots.get(spec.task) if isinstance(num_fewshot, dict) else num_fewshot
        try:
            if spec.task not in variants:
                loaded += _build(catalog, spec, i, suite_path, limit, k, cache)
                continue
            v = variants[spec.task]
            try:
                built = _build(catalog, spec.model_copy(update={"task": v.task, "metric": v.metric,
                                                                "filter": v.filter}),
                               i, suite_path, limit, k, cache, leaf=spec.task)
            except ConfigError as e:  # said of the arm's key, not of the suite's entry
                raise ConfigError([p.replace(f"{suite_path}: tasks[{i}].task", f"{where}variants.{spec.task}.task")
                                   for p in e.problems]) from None
            if len(built) != 1:
                raise HarnessError(f"{where}variants.{spec.task}: {v.task} is a group; a variant is one task "
                                   "over the suite task's documents")
            loaded.append(dataclasses.replace(built[0], spec=spec, variant=v))
        except ConfigError as e:
            problems += e.problems
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))  # an unreadable task file once, not per task
    return loaded


def load_fewshot_task(suite: SuiteSpec, suite_path: str, task: str, num_fewshot: int,
                      limit: int | None = None, cache: Path | None = None,
                      remember: Remember | None = None) -> LoadedTask:
    """The suite task `task` prompted with `num_fewshot` examples: a prompting-only baseline."""
    i, spec = next((i, t) for i, t in enumerate(suite.tasks) if t.task == task)
    if remember is not None:
        (one,) = remember.tasks(suite, [(i, spec)], {"what": "fewshot", "limit": limit, "num_fewshot": num_fewshot},
                                lambda: [load_fewshot_task(suite, suite_path, task, num_fewshot, limit, cache)])
        return one
    built = _build(_Catalog(suite.task_dirs), spec, i, suite_path, limit, num_fewshot, cache)
    if len(built) != 1:
        raise HarnessError(f"{suite_path}: tasks[{i}] ({task}) is a group; a few-shot baseline needs one task")
    return built[0]


# harness's own modules that decide how a task is built from its files (part of every recipe)
_BUILD_SOURCES = ("tasks.py", "lm_eval_patches.py", "metrics.py", "files.py")


class DeferredTask(Lazy):
    """The lm-eval task of a remembered recipe: built (lm-eval imported, the task's documents read)
    only when something asks for one of its attributes, and then checked to hash as remembered. Sent
    to another process (a Ray worker), it is built here, where the store's caches it is checked
    against are, and sent built."""

    built = Lazy.get

    def __getattr__(self, name: str) -> Any:  # only for what the object itself lacks
        if name.startswith("__") or name in ("_compute", "_value"):
            raise AttributeError(name)
        return getattr(self.built(), name)


@dataclass(frozen=True)
class Remember:
    """Where built tasks are remembered (a folder of the store) and how a file's content is hashed
    (the store's hash cache). A recipe is everything that decides a built task and its hash: the
    suite entries, limit and shots, the task's YAML and its includes, the Python modules beside
    them, its data files' content, lm-eval's, datasets' and harness's versions and the modules of
    harness that build tasks. Only tasks whose files are all local have one: a task from lm-eval's
    registry or the hub is built every time."""

    folder: Path
    file_hash: Callable[[Path], str]

    def recipe(self, suite: SuiteSpec, entries: list[tuple[int, TaskSpec]], extra: dict,
               extra_tasks: list[str]) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        import harness

        local, _ = local_task_files(suite.task_dirs)
        files: dict[str, str] = {}
        names = [spec.task for _, spec in entries] + extra_tasks
        for name in names:
            if name not in local or not self._files(local[name], files):
                return None
        if any(spec.data is not None or {"dataset_path", "dataset_kwargs"} & set(spec.overrides)
               for _, spec in entries):
            return None  # converted benchmark files: keyed by their conversion, built every time
        try:
            versions = [harness.__version__, version("lm_eval"), version("datasets")]
        except PackageNotFoundError:
            return None
        here = Path(__file__).parent
        parts = {"entries": [[i, spec.model_dump(mode="json")] for i, spec in entries], "extra": extra,
                 "tasks": {n: str(local[n]) for n in names},
                 "files": files, "versions": versions, "sources": [self.file_hash(here / f) for f in _BUILD_SOURCES]}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def _files(self, path: Path, files: dict[str, str], leaf: bool = True) -> bool:
        """Add a task YAML's files (path -> content hash): itself, its includes, the Python modules
        beside each, and (for the task's own file) its data files. False where it reads anything
        that is not a local file."""
        path = path.resolve()
        if not path.is_file():
            return False
        files[str(path)] = self.file_hash(path)
        for module in sorted(path.parent.glob("*.py")):
            files[str(module)] = self.file_hash(module)
        cfg = load_task_yaml(path, resolve_func=False, recursive=False)
        includes = cfg.get("include") or []
        for inc in includes if isinstance(includes, list) else [includes]:
            if not self._files(path.parent / inc, files, leaf=False):
                return False
        if not leaf:
            return True
        data = (load_task_yaml(path, resolve_func=False).get("dataset_kwargs") or {}).get("data_files")
        if not data:
            return False  # a dataset from the hub (or lm-eval's own loader): not ours to hash
        values = data.values() if isinstance(data, dict) else [data]
        for value in values:
            for p in value if isinstance(value, list) else [value]:
                if "://" in str(p):
                    return False
                target = Path(p) if Path(p).is_absolute() else path.parent / p
                if not target.is_file():
                    return False  # a missing file: the build says which, with its own message
                files[str(target.resolve())] = self.file_hash(target)
        return True

    def tasks(self, suite: SuiteSpec, entries: list[tuple[int, TaskSpec]], extra: dict,
              build: Callable[[], list[LoadedTask]],
              variants: dict[str, TaskVariantSpec] | None = None) -> list[LoadedTask]:
        """The tasks of `entries` as remembered for this recipe (their lm-eval tasks deferred), or
        built by `build` and remembered."""
        variants = variants or {}
        recipe = self.recipe(suite, entries, extra, [v.task for v in variants.values()])
        if recipe is None:
            return build()
        path = self.folder / f"tasks-{recipe[:32]}.json"
        try:
            remembered = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            remembered = None
        if isinstance(remembered, list):
            try:
                return self._deferred(remembered, suite, build, variants)
            except (KeyError, TypeError, IndexError, ValueError):
                pass  # not as written by this version: built again
        loaded = build()
        rows = [{"entry": next(i for i, spec in entries if spec == t.spec), "name": t.name, "task_hash": t.task_hash,
                 "n_docs": t.n_docs, "indices": t.indices, "leaf": t.leaf, "variant": t.variant is not None}
                for t in loaded]
        from harness.util.files import atomic_write

        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: p.write_text(json.dumps(rows), encoding="utf-8"))
        return loaded

    @staticmethod
    def _deferred(rows: list[dict], suite: SuiteSpec, build: Callable[[], list[LoadedTask]],
                  variants: dict[str, TaskVariantSpec]) -> list[LoadedTask]:
        built: dict[str, LoadedTask] = {}

        def task(name: str, task_hash: str) -> Any:
            if not built:
                built.update({t.name: t for t in build()})
            if name not in built or built[name].task_hash != task_hash:
                raise HarnessError(f"task {name}: its files changed while this comparison ran; run it again")
            return built[name].task

        out = []
        for r in rows:
            spec = suite.tasks[r["entry"]]
            out.append(LoadedTask(
                name=r["name"], spec=spec, task=DeferredTask(functools.partial(task, r["name"], r["task_hash"])),
                task_hash=r["task_hash"], n_docs=int(r["n_docs"]),
                indices=None if r["indices"] is None else tuple(r["indices"]), leaf=r["leaf"],
                variant=variants[spec.task] if r["variant"] else None))
        return out
