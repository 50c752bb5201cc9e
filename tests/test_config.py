"""Config and suite files: typed, validated before any model loads, every problem named with
its file and key path."""

from __future__ import annotations

import pytest

from conftest import REPO
from harness.config import load_config, load_suite
from harness.errors import ConfigError


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_demo_config_loads_with_paths_relative_to_the_file(tiny_world, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "base").symlink_to(tiny_world.base)
    (tmp_path / "models" / "a").symlink_to(tiny_world.candidates["domain-only"])
    sub = tmp_path / "configs"
    sub.mkdir()
    path = _write(sub, f"name: x\nbase: {{path: ../models/base}}\ncandidates:\n"
                       f"  - {{name: a, adapter: ../models/a}}\nsuite: {REPO / 'suites/demo.yaml'}\n")
    spec = load_config(path)
    assert spec.base.path == str((tmp_path / "models" / "base").resolve())
    assert spec.candidates[0].adapter == str((tmp_path / "models" / "a").resolve())
    assert spec.store == str((sub / ".harness").resolve())
    assert spec.report_dir == str((sub / "reports" / "x").resolve())
    assert spec.eval.batch_size == 32 and spec.base.trust_remote_code is False


def test_every_problem_is_listed_with_file_and_key(tmp_path):
    path = _write(tmp_path, "name: x\nbase: {path: ./missing, dtype: float8}\n"
                            "candidates:\n  - {name: a}\n  - {name: base, adapter: ./x}\n"
                            "suite: s.yaml\neval: {batch_size: 0}\nextra_key: 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    for expected in [
        f"{path}: base.dtype: Input should be 'float32', 'bfloat16', 'float16' or 'auto'",
        f"{path}: candidates[0]: give one of `adapter` (LoRA on the base), `path` (full model), or `served` alone",
        f"{path}: candidates[1].name: must be non-empty, not 'base'",
        f"{path}: eval.batch_size: Input should be greater than or equal to 1",
        f"{path}: extra_key: unknown key",
    ]:
        assert expected in msg, msg
    assert len(e.value.problems) == 5


def test_missing_model_and_adapter_folders_are_reported_before_loading(tmp_path):
    path = _write(tmp_path, "name: x\nbase: {path: ./nope}\ncandidates:\n  - {name: a, adapter: ./gone}\n"
                            f"suite: {REPO / 'suites/demo.yaml'}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert f"{path}: base.path: model folder {tmp_path / 'nope'} does not exist" in str(e.value)
    assert f"{path}: candidates[0].adapter: adapter folder {tmp_path / 'gone'} does not exist" in str(e.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, "name: x\nbase:\n  path: [unclosed\ncandidates: []\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: invalid YAML"):
        load_config(path)


def test_suite_validation(tmp_path):
    suite = load_suite(REPO / "suites" / "demo.yaml")
    assert {t.role for t in suite.tasks} == {"target", "forgetting", "bias"}
    assert suite.task_dirs == [str(REPO / "suites" / "tasks")]
    bad = _write(tmp_path, "name: s\ntasks:\n  - {task: a, role: target, metric: acc}\n"
                           "  - {task: a, role: sideways, metric: acc}\n", name="s.yaml")
    with pytest.raises(ConfigError) as e:
        load_suite(bad)
    assert f"{bad}: tasks[1].role: Input should be 'target', 'forgetting' or 'bias'" in str(e.value)


def test_unknown_task_is_named_with_its_suite_entry(tmp_path):
    from harness.sources.tasks import load_tasks

    (tmp_path / "tasks").mkdir()
    path = _write(tmp_path, "name: s\ntasks:\n  - {task: no_such_task_anywhere, role: target, metric: acc}\n",
                  name="s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: tasks\[0\].task: unknown task 'no_such_task_anywhere'"):
        load_tasks(load_suite(path), str(path))


def test_dtype_auto_is_bfloat16_where_the_cpu_computes_it_faster_and_keys_runs_as_that_dtype(tiny_config, monkeypatch):
    """`dtype: auto` resolves before anything is keyed: on a CPU with AMX the runs are the bfloat16
    runs; with AVX-512 BF16 alone (no faster than float32) or AVX2 (~160x slower) the float32 ones;
    the choice and its reason are said. Both capability answers without either machine: the CPU's
    flags are what the test says."""
    from harness.pipeline import load
    from harness.plan import plan_models
    from harness.store import Store
    from harness.util import environment

    config = tiny_config()
    text = config.read_text()

    def fingerprint(dtype: str, flags: set[str]) -> tuple[str, dict]:
        monkeypatch.setattr(environment, "cpu_flags", lambda: flags)
        config.write_text(text.replace("base:\n", f"base:\n  dtype: {dtype}\n"))
        loaded = load(config)
        return plan_models(loaded.spec, Store(loaded.spec.store))[0].fingerprint, loaded.dtype_notes

    monkeypatch.setattr(environment, "bf16_matmul_ms", lambda: (1.0, 1.1))  # no pinned-bf16 warning here
    amx = {"avx2", "avx512_bf16", "amx_bf16", "amx_tile"}
    assert fingerprint("auto", amx) == (fingerprint("bfloat16", amx)[0],
                                        {"base": "bfloat16 (auto: the CPU has AMX (bfloat16 matrix units))"})
    assert fingerprint("auto", {"avx2"}) == (fingerprint("float32", {"avx2"})[0], {
        "base": "float32 (auto: the CPU has no bfloat16 instructions (neither AMX nor AVX-512 BF16))"})
    assert fingerprint("auto", {"avx2", "avx512_bf16"}) == (fingerprint("float32", {"avx2"})[0], {
        "base": "float32 (auto: the CPU has AVX-512 BF16 but no AMX: bfloat16 is no faster than float32 there)"})
    assert fingerprint("bfloat16", amx)[0] != fingerprint("float32", amx)[0]


def test_a_pinned_bfloat16_on_a_cpu_that_computes_it_slowly_runs_as_asked_with_the_measured_slowdown(
        tiny_config, monkeypatch):
    """A config pinning bfloat16 on an AVX2 CPU keeps bfloat16 (its runs are keyed so) and warns with the
    slowdown measured on one small matmul; on an AMX CPU, or where bf16 measured about as fast, nothing
    is said. The measurement itself is real and quick (a 256x256 matmul both ways)."""
    from harness.pipeline import load
    from harness.util import environment

    f32, bf16 = environment.bf16_matmul_ms()  # this machine's, whatever class it is
    assert 0 < f32 < 1000 and 0 < bf16 < 1000

    config = tiny_config()
    config.write_text(config.read_text().replace("base:\n", "base:\n  dtype: bfloat16\n"))
    monkeypatch.setattr(environment, "bf16_matmul_ms", lambda: (0.4, 64.0))  # an AVX2 EPYC's proportions
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx2", "fma"})
    loaded = load(config)
    assert loaded.spec.base.dtype == "bfloat16"
    note = loaded.dtype_notes["base"]
    assert note.startswith("bfloat16 (WARNING: ") and "160x slower than float32" in note
    assert "64.0 ms against 0.40 ms" in note and "use `auto`" in note
    monkeypatch.setattr(environment, "bf16_matmul_ms", lambda: (0.4, 0.5))
    assert load(config).dtype_notes == {}
    monkeypatch.setattr(environment, "bf16_matmul_ms", lambda: (0.4, 64.0))
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert load(config).dtype_notes == {}


def test_the_trainer_resolves_its_precision_as_scoring_resolves_dtype(monkeypatch):
    """`precision: auto` trains in bf16 on an AMX CPU and in float32 ("no") elsewhere, saying why; a pinned
    bf16 on a CPU that computes it slowly is kept and warned about."""
    from harness.train.lora import resolve_precision
    from harness.util import environment

    monkeypatch.setattr(environment, "bf16_matmul_ms", lambda: (0.4, 64.0))
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert resolve_precision("auto", "cpu") == ("bf16",
                                                "precision bf16 (auto: the CPU has AMX (bfloat16 matrix units))")
    assert resolve_precision("bf16", "cpu") == ("bf16", None)
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx2"})
    chosen, said = resolve_precision("auto", "cpu")
    assert chosen == "no" and "no bfloat16 instructions" in said
    chosen, said = resolve_precision("bf16", "cpu")
    assert chosen == "bf16" and said.startswith("WARNING: bfloat16 is pinned") and "160x slower" in said
    assert resolve_precision("no", "cpu") == ("no", None)
