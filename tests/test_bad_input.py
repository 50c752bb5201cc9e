"""The bad-input catalogue: each a one-line error naming the file, key or row and what to do, exit
code 2, and nothing half-written to the store. And the security refusals: no checkpoint code and
no pickle runs without the user's opt-in."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]
DEMO_TASKS = REPO / "suites" / "tasks" / "demo"


@pytest.fixture
def world(tiny_world, tmp_path):
    """Writable copies of the tiny world's base and one adapter, and a config writer."""
    base = tmp_path / "base"
    shutil.copytree(tiny_world.base, base)
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_world.candidates["domain-only"], adapter)

    def config(extra: str = "", candidates: str | None = None, suite: Path | None = None) -> Path:
        cands = candidates if candidates is not None else f"  - {{name: tuned, adapter: {adapter}}}\n"
        text = (f"name: bad\nbase:\n  path: {base}\ncandidates:\n{cands}"
                f"suite: {suite or REPO / 'suites' / 'demo.yaml'}\neval: {{batch_size: 16, limit: 12}}\n"
                f"store: {tmp_path / 'store'}\nreport_dir: {tmp_path / 'report'}\n{extra}")
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        return path

    return {"base": base, "adapter": adapter, "config": config, "tmp": tmp_path}


def _task_suite(tmp: Path, change) -> Path:
    """A suite over a copy of the demo's task folder, changed by `change(folder)`."""
    folder = tmp / "tasks"
    shutil.copytree(DEMO_TASKS, folder)
    change(folder)
    suite = tmp / "suite.yaml"
    suite.write_text(f"name: s\ntask_dirs: [{folder}]\ntasks:\n"
                     "  - {task: demo_triage, role: target, metric: acc}\n"
                     "  - {task: demo_capitals, role: forgetting, metric: acc}\n")
    return suite


def _refused(config: Path, pattern: str, *args: str) -> str:
    """Run `harness compare`; it must exit 2 with one `error:` line matching `pattern`, and store no run."""
    result = CliRunner().invoke(main, ["compare", "--config", str(config), *args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and re.search(pattern, error[0]), result.stderr
    assert not list(config.parent.glob("store/runs/*/*/*.json")), "a run was stored"
    assert not (config.parent / "report" / "index.html").exists()
    return error[0]


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ----------------------------------------------------------------------------- config and suite
def test_malformed_yaml_names_the_line(world):
    config = world["config"]()
    config.write_text(config.read_text() + "eval: [\n")
    _refused(config, r"bad.yaml:\d+: invalid YAML")


@pytest.mark.parametrize("entry, pattern", [
    ("{task: no_such_task, role: target, metric: acc}", r"suite.yaml: tasks\[0\].task: unknown task 'no_such_task'"),
    ("{task: demo_triage, role: hero, metric: acc}", r"suite.yaml: tasks\[0\].role: Input should be 'target'"),
    ("{task: demo_triage, role: target, metric: no_such_metric}",
     r"demo_triage: no per-item metric 'no_such_metric' \(have: acc\); fix `metric:`"),
])
def test_unknown_task_role_or_metric_names_the_suite_entry(world, entry, pattern):
    suite = world["tmp"] / "suite.yaml"
    suite.write_text(f"name: s\ntask_dirs: [{DEMO_TASKS}]\ntasks:\n  - {entry}\n")
    config = world["config"](suite=suite)
    if "no_such_metric" in entry:  # found once lm-eval has scored: nothing of the comparison is written
        result = CliRunner().invoke(main, ["compare", "--config", str(config)])
        assert result.exit_code == 2 and re.search(pattern, result.stderr), result.stderr
        assert not (config.parent / "report" / "index.html").exists()
        return
    _refused(config, pattern)


def test_unknown_gate_rule_names_the_gate(world):
    _refused(world["config"]("gates:\n  - {rule: vibes, role: target}\n"),
             r"bad.yaml: gates\[0\].rule: Input should be 'improves'")


def test_missing_model_and_adapter_folders(world, tiny_world):
    shutil.rmtree(world["adapter"])
    _refused(world["config"](), r"bad.yaml: candidates\[0\].adapter: adapter folder .*adapter does not exist")
    shutil.rmtree(world["base"])
    present = f"  - {{name: tuned, adapter: {tiny_world.candidates['domain-only']}}}\n"
    _refused(world["config"](candidates=present), r"bad.yaml: base.path: model folder .*base does not exist")


# ----------------------------------------------------------------------------- models
def test_adapter_trained_for_another_base_shape_mismatch(world):
    weights = world["adapter"] / "adapter_model.safetensors"
    tensors = load_file(weights)
    name = next(k for k in tensors if k.endswith("q_proj.lora_A.weight"))
    tensors[name] = torch.cat([tensors[name], tensors[name]], dim=1)  # in_features doubled
    save_file(tensors, weights)
    _refused(world["config"](), r"adapter: candidates\[0\] \(tuned\) expects layer .*q_proj with input size "
                                r"\d+, the base's has \d+; the adapter was trained for a different base")


def test_adapter_trained_for_another_base_missing_layer(world):
    weights = world["adapter"] / "adapter_model.safetensors"
    tensors = load_file(weights)
    tensors = {k.replace("layers.0.", "layers.99."): v for k, v in tensors.items()}
    save_file(tensors, weights)
    _refused(world["config"](), r"adapts layer .*layers\.99\..*which the base .* does not have")


def test_candidate_with_another_tokenizer_is_refused_unless_allowed(world):
    other = world["tmp"] / "retokenized"
    shutil.copytree(world["base"], other)
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = list(vocab)[10:12]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # two tokens swapped: other ids for the same text
    (other / "tokenizer.json").write_text(json.dumps(tok))
    candidate = f"  - {{name: full, path: {other}}}\n"
    _refused(world["config"](candidates=candidate),
             r"candidates\[0\] \(full\) has a tokenizer other than the base's \(tokenizer.json differ\).*"
             r"allow_different_tokenizer: true")
    from harness.config import load_config
    from harness.plan import plan_models
    from harness.store import Store

    allowed = world["config"](candidates=f"  - {{name: full, path: {other}, allow_different_tokenizer: true}}\n")
    spec = load_config(allowed)
    assert [m.label for m in plan_models(spec, Store(spec.store))] == ["base", "full"]


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.9999])
def test_truncated_safetensors_is_named(world, keep):
    _truncate(world["base"] / "model.safetensors", keep)
    _refused(world["config"](), r"model.safetensors: truncated.*re-download or re-save it")


def test_corrupt_safetensors_header_is_named(world):
    path = world["adapter"] / "adapter_model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:16] = b"\xff" * 8  # inside the JSON header
    path.write_bytes(bytes(data))
    _refused(world["config"](), r"adapter_model.safetensors: corrupt safetensors file \(header is not JSON\)")


# ----------------------------------------------------------------------------- data
@pytest.mark.parametrize("content, pattern", [
    ("", r"triage.jsonl: no records \(empty, or blank lines only\); task demo_triage"),
    ("\n  \n", r"triage.jsonl: no records"),
    (None, r"triage.jsonl:3: not valid JSON \(.*\); fix or remove the line"),
    ('{"claim": "x", "gold": 0}\n[1, 2]\n', r"triage.jsonl:2: expected a JSON object per line, got list"),
])
def test_empty_or_malformed_data_file_names_file_and_line(world, content, pattern):
    def change(folder: Path) -> None:
        path = folder / "data" / "triage.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        path.write_text(content if content is not None else "".join(lines[:2]) + "{broken\n" + "".join(lines[2:]))

    _refused(world["config"](suite=_task_suite(world["tmp"], change)), pattern)


def test_task_with_zero_items_after_its_filter(world):
    def change(folder: Path) -> None:
        y = (folder / "demo_triage.yaml").read_text()
        (folder / "demo_triage.yaml").write_text(y.replace("test_split: test", "test_split: test\n"
                                                           "process_docs: !function utils.drop_all"))
        (folder / "utils.py").write_text((folder / "utils.py").read_text()
                                         + "\n\ndef drop_all(dataset):\n    return dataset.select([])\n")

    _refused(world["config"](suite=_task_suite(world["tmp"], change)),
             r"tasks\[0\] \(demo_triage\): the task has no items")


def test_non_finite_score_names_task_model_and_document(world):
    def change(folder: Path) -> None:
        (folder / "utils.py").write_text((folder / "utils.py").read_text()
                                         + "\n\ndef nan_acc(doc, results):\n    return {'acc': float('nan')}\n")
        y = (folder / "demo_triage.yaml").read_text()
        (folder / "demo_triage.yaml").write_text(y.replace("metric_list:", "process_results: !function "
                                                           "utils.nan_acc\nmetric_list:"))

    _refused(world["config"](suite=_task_suite(world["tmp"], change)),
             r"task demo_triage, base: .*doc 0: metric 'acc' is nan; .*non-finite score")


def test_store_from_a_newer_harness(world):
    config = world["config"]()
    store = world["tmp"] / "store"
    store.mkdir()
    with sqlite3.connect(store / "index.sqlite") as db:
        db.execute("PRAGMA user_version = 99")
    _refused(config, r"index.sqlite: written by a newer harness \(schema 99 > \d+\); upgrade harness")


# ----------------------------------------------------------------------------- security
class _Planted:
    """Unpickling this writes a marker file: proof that a pickle was loaded."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pickle code ran"))


def test_remote_code_and_pickle_weights_never_run_without_opt_in(world):
    marker = world["tmp"] / "ran.txt"
    # 1. custom code named by config.json's auto_map
    coded = world["tmp"] / "coded"
    shutil.copytree(world["base"], coded)
    cfg = json.loads((coded / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "evil_model.EvilForCausalLM"}
    (coded / "config.json").write_text(json.dumps(cfg))
    (coded / "evil_model.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('code ran')\n")
    config = world["config"](candidates=f"  - {{name: coded, path: {coded}}}\n")
    _refused(config, r"coded/config.json: auto_map points at Python code shipped with the checkpoint "
                     r"\(evil_model.py\), which loading would run; .*`trust_remote_code: true` on candidates\[0\]")

    # 2. weights only as a pickle, one that runs code when unpickled
    pickled = world["tmp"] / "pickled"
    shutil.copytree(world["base"], pickled)
    (pickled / "model.safetensors").unlink()
    planted = _Planted()
    planted.marker = marker
    with (pickled / "pytorch_model.bin").open("wb") as f:
        pickle.dump(planted, f)
    config = world["config"](candidates=f"  - {{name: pickled, path: {pickled}}}\n")
    _refused(config, r"pickled: weights only in pickle format \(pytorch_model.bin\); unpickling can run "
                     r"arbitrary code. Convert them to safetensors .* `allow_pickle: true` on candidates\[0\]")
    assert not marker.exists()


def test_pickle_weights_load_when_allowed(world):
    """With `allow_pickle: true`, a real (state-dict) pickle loads and scores as the safetensors copy."""
    from harness.backends.hf import HFBackend

    pickled = world["tmp"] / "pickled"
    shutil.copytree(world["base"], pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    from harness.sources.checkpoints import check_model_folder

    check_model_folder(pickled, where="base", trust_remote_code=False, allow_pickle=True)
    from lm_eval.api.instance import Instance

    requests = [Instance("loglikelihood", {}, ("The capital of France is", " Paris"), 0)]
    scores = []
    for folder, allow in ((world["base"], False), (pickled, True)):
        backend = HFBackend(folder, dtype="float32", device="cpu", batch_size=1, allow_pickle=allow)
        with backend.activate("base") as lm:
            scores.append(lm.loglikelihood(requests)[0][0])
    assert scores[0] == scores[1]
