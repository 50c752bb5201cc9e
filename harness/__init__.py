"""harness: evaluation and regression testing for fine-tuned LLMs.

The stages stand at the top of the package in the order data flows through them; each takes the
previous stage's immutable value and returns a new one:

    config -> plan -> execute -> store -> judge -> compare -> gates -> roi
    (specs)   (what is  (the one    (runs and  (pairs of  (pairs any  (verdicts) (costs,
               needed,   scoring     judgments  answers    two arms:            value,
               what is   loop: the   on disk,   judged     stats, the           frontier)
               stored)   only stage  the cache) through    judge's
                         that loads             execute)   win rates)
                         a model)

`records` holds what the stages produce, `comparison` comparison.json's schema, `persisted` the
versioned files the harness writes (trainer manifests, sweeps, checkpoints, tool results), `pairing`
the one way two runs' records are joined by document (compare, the ROI), `stats` the intervals,
tests and power; `pipeline` runs config -> ... -> roi in one call for `harness compare`, `harness
gate` and the pytest plugin.
Below the stages:

    sources/   where tasks and models come from: lm-eval tasks (tasks), local benchmark files
               (files), aggregation references, checkpoint checks, model fingerprints
    backends/  model runners behind lm-eval's LM interface (hf, vllm, an OpenAI-compatible endpoint)
               and the lm-eval/vLLM patches
    util/      atomic writes and hashing, file locks, strict YAML, environment, progress bars
Beside them, using the stages:

    report/    HTML report from comparison.json (Jinja2, inline SVG)
    train/     the LoRA trainer, learning curves, data-size sweeps
    tools/     harness monitor, harness data check
    demo/      the embedded demo world (`make report`)
    cli.py, pytest_plugin.py   the entry points

A module imports only from layers below its own (`lint-imports`, the contract in pyproject.toml,
runs in `make test`).
"""

__version__ = "0.2.0"
