"""Build the demo world: data, tokenizer, a pretrained tiny base, its LoRA candidates, and a second,
smaller base with its own tokenizer and fine-tune.

    harness demo            # builds into .harness/demo/, skipping every stage already built

Each stage is keyed by a content hash of its inputs: the specs (for a candidate, what makes its
adapter what it is: TrainSpec.adapter_identity), the data and the source code of the modules that
produce it. A stage whose key and output hashes match its stamp is not rebuilt;
anything else is rebuilt with everything downstream of it. Same specs, same bytes. Two builds
into one folder at once (two terminals, parallel test workers) take turns: the second waits for
the first and then finds its stages built.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.config import TrainSpec
from harness.demo import facts, pretrain, tokenizer, world
from harness.persisted import BUILD_STAMPS, SWEEP, BuildStamps, StageStamp, TrainManifest, read_record, write_record
from harness.train import checkpoint, data, loop, lora, sweep
from harness.train import curve as curve_module
from harness.util.files import sha256_file
from harness.util.locks import file_lock

STAMP = BUILD_STAMPS
# The probe files the demo suite's lm-eval tasks read (suites/tasks/demo/data/).
PROBE_FILES = {
    "demo_triage": "triage.jsonl",
    "demo_triage_fewshot": "triage_fewshot.jsonl",
    "demo_capitals": "capitals.jsonl",
    "demo_elements": "elements.jsonl",
    "demo_arithmetic": "arithmetic.jsonl",
    "demo_everyday": "everyday.jsonl",
    "demo_pronoun_bias": "pronoun_bias.jsonl",
    "demo_note_bias": "note_bias.jsonl",
}


@dataclass(frozen=True)
class CandidateRecipe:
    """How one demo candidate is fine-tuned (the rest of TrainSpec comes from its defaults)."""

    data: str = "domain_train.jsonl"  # or domain_train_balanced.jsonl: the de-biased notes
    replay_ratio: float = 0.0
    steps: int = 400
    lr: float = 2e-3
    eval_every: int = 0  # evaluate checkpoints along training (needs the build's eval_config)


@dataclass(frozen=True)
class OtherBase:
    """Another base of the demo: another shape (and tokenizer) pretrained on the same corpus, with its
    own fine-tunes, for the comparison of bases and the quality-cost frontier."""

    shape: pretrain.ModelShape
    vocab_size: int
    pretrain: pretrain.PretrainSpec = pretrain.PretrainSpec()
    candidates: dict[str, CandidateRecipe] = field(default_factory=lambda: {"domain-only": CandidateRecipe()})


@dataclass(frozen=True)
class DemoSpec:
    world: world.WorldSpec = world.WorldSpec()
    vocab_size: int = 1024
    shape: pretrain.ModelShape = pretrain.ModelShape()
    pretrain: pretrain.PretrainSpec = pretrain.PretrainSpec()
    candidates: dict[str, CandidateRecipe] = field(default_factory=lambda: {
        "domain-only": CandidateRecipe(eval_every=50),
        "with-replay": CandidateRecipe(replay_ratio=0.1, eval_every=50),
        "balanced-replay": CandidateRecipe(data="domain_train_balanced.jsonl", replay_ratio=0.1),
    })
    # the data-size sweep: this candidate's recipe on nested subsets of its data (sizes in records;
    # the full size is that candidate itself, reused); empty: no sweep
    sweep_of: str = "domain-only"
    sweep_sizes: tuple[int, ...] = (250, 500, 1000, 2000)
    # other bases, built under bases/<name>/: a quarter-size Llama (2 layers of width 64, head dimension
    # 32 as vLLM's CPU attention needs) with a smaller tokenizer of its own, and its domain-only fine-tune
    other_bases: dict[str, OtherBase] = field(default_factory=lambda: {"small": OtherBase(
        shape=pretrain.ModelShape(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=192,
                                  vocab_size=768), vocab_size=768)})


@dataclass(frozen=True)
class DemoBuild:
    """Where the built pieces are, and how long each stage took this time (0 when cached)."""

    root: Path
    base: Path
    candidates: dict[str, Path]
    stage_s: dict[str, float]
    sweep: Path | None = None  # sweep.json, when the build ran the sweep
    other_bases: dict[str, Path] = field(default_factory=dict)  # name -> base folder
    other_candidates: dict[str, dict[str, Path]] = field(default_factory=dict)  # base name -> its candidates


def _source_hash(*modules) -> str:
    h = hashlib.sha256()
    for m in modules:
        h.update(Path(m.__file__).read_bytes())
    return h.hexdigest()


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _files_sha(folder: Path, names: list[str]) -> dict[str, str]:
    return {n: sha256_file(folder / n) for n in names if (folder / n).is_file()}


class _Stamps:
    """The build.json record (BuildStamps): per stage, the input key and the hashes of the outputs."""

    def __init__(self, root: Path):
        self.path = root / STAMP
        self.stamps = read_record(self.path, BuildStamps) if self.path.is_file() else BuildStamps()

    def fresh(self, stage: str, key: str, folder: Path) -> bool:
        entry = self.stamps.stages.get(stage)
        if entry is None or entry.key != key:
            return False
        return _files_sha(folder, list(entry.files)) == entry.files

    def record(self, stage: str, key: str, folder: Path, names: list[str], wall_s: float) -> None:
        stamp = StageStamp(key=key, files=_files_sha(folder, names), wall_s=wall_s)
        self.stamps = BuildStamps(stages={**self.stamps.stages, stage: stamp})
        write_record(self.path, self.stamps)


JUDGE_VALIDATION_PAIRS = 60  # labelled pairs the demo's judge is measured on


def write_probe_files(w: world.World, folder: Path) -> list[Path]:
    """Write the probe documents the suite reads; returns the files whose content changed."""
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for task, name in PROBE_FILES.items():
        text = world.to_jsonl(w.probes[task])
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def _build_lock(root: Path, log: Callable[[str], None]):
    """One build per folder at a time."""
    return file_lock(root / ".build.lock",
                     on_wait=lambda: log(f"demo: another process is building {root}; waiting for it"))


def build_demo(
    root: Path,
    spec: DemoSpec = DemoSpec(),
    probe_dir: Path | None = None,
    log: Callable[[str], None] = print,
    eval_config: Path | None = None,
) -> DemoBuild:
    """Build (or reuse) the demo world under `root`; write its probe files to `probe_dir`. With an
    `eval_config` (configs/demo.yaml: its base must be this build's), candidates with `eval_every`
    get their learning-forgetting curve and the data-size sweep runs; without one, neither."""
    with _build_lock(root, log):
        return _build(root, spec, probe_dir, log, eval_config)


def _build(root: Path, spec: DemoSpec, probe_dir: Path | None, log: Callable[[str], None],
           eval_config: Path | None) -> DemoBuild:
    stamps = _Stamps(root)
    stage_s: dict[str, float] = {}
    data_dir, base_dir = root / "data", root / "base"

    # 1. data: pure function of the world spec; cheap, so always generated, written if changed
    t = time.perf_counter()
    w = world.generate_world(spec.world)
    data_dir.mkdir(exist_ok=True)
    # a judge's labelled validation pairs (configs/demo.yaml: judge.validation), from the last training claims
    validation = world.judge_pairs(w, len(w.domain_train) - JUDGE_VALIDATION_PAIRS, JUDGE_VALIDATION_PAIRS,
                                   f"{spec.world.seed}:judge-validation")
    for name, rows in (("domain_train.jsonl", w.domain_train), ("replay.jsonl", w.replay),
                       ("domain_train_balanced.jsonl", w.domain_train_balanced),
                       ("judge_validation.jsonl", validation)):
        path, text = data_dir / name, world.to_jsonl(rows)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    if probe_dir is not None:
        for path in write_probe_files(w, probe_dir):
            log(f"demo: wrote {path} (the generator's output changed; commit it)")
    stage_s["data"] = round(time.perf_counter() - t, 3)

    # 2. tokenizer + pretrained base, keyed by everything that shapes their bytes
    def pretrained(stamp: str, timing: str, what: str, vocab_size: int, shape: pretrain.ModelShape,
                   recipe: pretrain.PretrainSpec, folder: Path) -> str:
        key = _key(asdict(spec.world), vocab_size, asdict(shape), asdict(recipe),
                   _source_hash(world, facts, tokenizer, pretrain, loop))
        if stamps.fresh(stamp, key, folder):
            log(f"demo: {what} up to date ({folder})")
            stage_s[timing] = 0.0
            return key
        t = time.perf_counter()
        tok = tokenizer.train_tokenizer(w.corpus + [r["prompt"] + r["completion"] for r in w.domain_train],
                                        vocab_size)
        log(f"demo: pretraining {what} ({recipe.steps} steps) ...")
        pretrain.pretrain(w.corpus, tok, shape, recipe, folder, log=lambda m: log(f"  {timing} {m}"))
        stage_s[timing] = round(time.perf_counter() - t, 3)
        stamps.record(stamp, key, folder, ["model.safetensors", "config.json", "tokenizer.json"], stage_s[timing])
        log(f"demo: {what} built in {stage_s[timing]:.0f} s")
        return key

    base_key = pretrained("base", "pretrain", "the base model", spec.vocab_size, spec.shape, spec.pretrain, base_dir)

    # 3. candidates: LoRA fine-tunes through the same trainer `harness train` runs; a recipe with
    #    eval_every keeps a checkpoint every that many steps (the checkpoints are the stage's too)
    eval_key = _eval_key(eval_config)
    candidates, specs = {}, {}
    def fine_tune(stage: str, recipe: CandidateRecipe, base: Path, key_of_base: str,
                  out: Path) -> tuple[TrainSpec, str]:
        train = TrainSpec(
            base=str(base), data=str(data_dir / recipe.data), out=str(out),
            replay=str(data_dir / "replay.jsonl") if recipe.replay_ratio > 0 else None,
            replay_ratio=recipe.replay_ratio, steps=recipe.steps, lr=recipe.lr, seed=0,
            checkpoint_every=recipe.eval_every,
        )
        key = _key(_adapter_key(train, key_of_base), train.checkpoint_every,
                   _source_hash(lora, loop, data, checkpoint))
        if stamps.fresh(f"candidate:{stage}", key, out):
            log(f"demo: candidate {stage} up to date ({out})")
            stage_s[f"train:{stage}"] = 0.0
        else:
            log(f"demo: fine-tuning candidate {stage} ({recipe.steps} steps, replay {recipe.replay_ratio}) ...")
            manifest = lora.train_lora(train, log=lambda m: log(f"  {stage} {m}"))
            stage_s[f"train:{stage}"] = manifest.wall_s
            stamps.record(f"candidate:{stage}", key, out,
                          ["adapter_model.safetensors", "adapter_config.json"], manifest.wall_s)
            log(f"demo: {stage} trained in {manifest.wall_s:.0f} s, final loss {manifest.final_loss:.3f}")
        return train, key

    for name, recipe in spec.candidates.items():
        out = root / "candidates" / name
        train, key = fine_tune(name, recipe, base_dir, base_key, out)
        specs[name] = train
        candidates[name] = out
        # its learning-forgetting curve: every checkpoint scored in one comparison (one model load
        # for the base and all of them), written into the trainer manifest as --eval-every would
        if eval_config is None or not recipe.eval_every:
            continue
        ckey = _key(key, eval_key, _source_hash(curve_module))
        if stamps.fresh(f"curve:{name}", ckey, out):
            stage_s[f"curve:{name}"] = 0.0
            continue
        t = time.perf_counter()
        log(f"demo: scoring {name}'s checkpoints along training ...")
        path = out / lora.MANIFEST
        manifest = read_record(path, TrainManifest)
        loaded = curve_module.load_eval_config(eval_config, base_dir)
        curve = lora.eval_curve(loaded, out, recipe.eval_every, recipe.steps, log=log)
        write_record(path, manifest.model_copy(update={"eval_curve": curve}))
        stage_s[f"curve:{name}"] = round(time.perf_counter() - t, 3)
        stamps.record(f"curve:{name}", ckey, out, [lora.MANIFEST], stage_s[f"curve:{name}"])

    # 4. other bases: their own tokenizer and shape, the same corpus and pretraining recipe; their
    #    fine-tunes by the same recipes
    other_bases, other_candidates = {}, {}
    for bname, other in spec.other_bases.items():
        folder = root / "bases" / bname / "base"
        key = pretrained(f"base:{bname}", f"pretrain:{bname}", f"base {bname}", other.vocab_size, other.shape,
                         other.pretrain, folder)
        other_bases[bname] = folder
        other_candidates[bname] = {}
        for name, recipe in other.candidates.items():
            out = root / "bases" / bname / "candidates" / name
            fine_tune(f"{bname}/{name}", recipe, folder, key, out)
            other_candidates[bname][name] = out

    # 5. the data-size sweep: one candidate's recipe on nested subsets of its data
    sweep_json = None
    if eval_config is not None and spec.sweep_sizes:
        sweep_dir = root / "sweep"
        recipe_spec = specs[spec.sweep_of].model_copy(update={"out": str(sweep_dir), "checkpoint_every": 0})
        key = _key(_adapter_key(recipe_spec, base_key), spec.sweep_sizes,
                   _source_hash(lora, loop, data, curve_module, sweep), eval_key)
        if stamps.fresh("sweep", key, sweep_dir):
            log(f"demo: data-size sweep up to date ({sweep_dir})")
            stage_s["sweep"] = 0.0
        else:
            t = time.perf_counter()
            log(f"demo: data-size sweep of {spec.sweep_of} over {', '.join(map(str, spec.sweep_sizes))} records ...")
            sweep.run_sweep(recipe_spec, list(spec.sweep_sizes), eval_config, name=spec.sweep_of,
                            log=lambda m: log(f"  {m}"), reuse=[candidates[spec.sweep_of]])
            stage_s["sweep"] = round(time.perf_counter() - t, 3)
            stamps.record("sweep", key, sweep_dir, [SWEEP], stage_s["sweep"])
        sweep_json = sweep_dir / SWEEP
    return DemoBuild(root=root, base=base_dir, candidates=candidates, stage_s=stage_s, sweep=sweep_json,
                     other_bases=other_bases, other_candidates=other_candidates)


def _adapter_key(train: TrainSpec, base_key: str) -> dict:
    """The adapter's identity (TrainSpec.adapter_identity), the base known by its build key (its
    folder differs from one build root to another, its bytes do not)."""
    hashes = lora.input_hashes(train)
    return train.adapter_identity({**hashes.inputs(train.base), "base": base_key})


def _eval_key(eval_config: Path | None) -> str | None:
    """What the evaluation of a curve depends on beyond the models: the config and its suite."""
    if eval_config is None:
        return None
    from harness.config import read_yaml, resolve_ref

    suite = Path(resolve_ref(str(read_yaml(eval_config).get("suite", "")), eval_config.resolve().parent))
    return _key(sha256_file(eval_config), sha256_file(suite) if suite.is_file() else None)
