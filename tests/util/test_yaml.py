"""YAML the harness reads (configs, suites, their task files): a key given twice is refused with
its file and line, never silently dropped."""

from __future__ import annotations

import shutil

import pytest

from conftest import REPO
from harness.config import load_config, load_suite
from harness.errors import ConfigError
from harness.util.yaml import load_yaml_text

GATE = "  - {rule: non_inferior, role: forgetting, margin: 0.1}\n"


def test_a_config_giving_gates_twice_is_refused_with_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"name: x\nbase: {{path: gpt2}}\nsuite: {REPO / 'suites/demo.yaml'}\n"
                    f"gates:\n{GATE}underpowered: fail\ngates:\n{GATE}")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:7: key 'gates' given twice (first on line 4)")


def test_a_key_given_twice_in_a_flow_mapping_is_refused_too():
    with pytest.raises(ConfigError, match=r"^s.yaml:2: key 'extra_metrics' given twice"):
        load_yaml_text("tasks:\n  - {task: t, extra_metrics: [a], extra_metrics: [b]}\n", "s.yaml")
    # a merge key may still be overridden, as YAML means it
    assert load_yaml_text("a: &x {k: 1}\nb: {<<: *x, k: 2}\n", "m.yaml")["b"] == {"k": 2}


def test_the_bias_suite_reports_lms_item_for_both_stereoset_tasks():
    suite = load_suite(REPO / "suites" / "bias.yaml")
    extra = {t.task: t.extra_metrics for t in suite.tasks}
    assert "lms_item" in extra["stereoset_intrasentence"]
    assert "lms_item" in extra["stereoset_intersentence"]


def test_the_old_bias_suite_text_is_refused(tmp_path):
    text = (REPO / "suites" / "bias.yaml").read_text()
    line = next(s for s in text.splitlines() if "stereoset_intrasentence" in s)
    old = text.replace(line, line.replace("extra_metrics: [lms_item]",
                                          "extra_metrics: [lms_item], extra_metrics: [likelihood_diff]"))
    path = tmp_path / "bias.yaml"
    path.write_text(old)
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: key 'extra_metrics' given twice"):
        load_suite(path)


def test_a_suite_task_file_giving_a_key_twice_is_named(tmp_path):
    from harness.sources.tasks import load_tasks

    folder = tmp_path / "tasks"
    shutil.copytree(REPO / "suites" / "tasks" / "demo", folder)
    task = folder / "demo_capitals.yaml"
    task.write_text(task.read_text() + "task: demo_capitals\n")
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\ntask_dirs: [{folder}]\ntasks:\n"
                     "  - {task: demo_capitals, role: target, metric: acc}\n")
    with pytest.raises(ConfigError, match=rf"{task}:\d+: key 'task' given twice"):
        load_tasks(load_suite(suite), str(suite))
